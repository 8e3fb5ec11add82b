"""API keys, the audit log, and the redaction of secrets from logs."""
