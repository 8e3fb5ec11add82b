"""Metric primitives for Centinela (latency histograms, etc.)."""
