"""Observability: what Dagster does not export to Prometheus itself (runs by job and status, the
latest evaluation of every asset check), served on /metrics by `ml-assets metrics-exporter`."""
