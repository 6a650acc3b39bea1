"""ml_assets: a machine-learning pipeline as a Dagster asset graph."""
