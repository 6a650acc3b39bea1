"""Benchmarks that print figures (`ml-assets bench ...`)."""
