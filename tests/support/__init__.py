"""Test-support helpers (real local network peers) for the Centinela test suite."""
