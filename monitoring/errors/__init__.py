"""Error capture and reporting helpers for Centinela."""
