"""Monitoring: batch scoring, drift against a per-model reference, live performance, alerts."""
