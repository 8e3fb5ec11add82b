"""API keys, the audit log, the redaction of secrets from logs, and the PII sanitiser (pii).

The sanitiser lives here, not under errors/: every package that stores, logs or sends text uses it."""
