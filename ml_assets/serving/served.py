"""The prediction log's records as the lake's `served_predictions` table."""

import polars as pl

UTC = pl.Datetime("us", "UTC")
SCHEMA = {
    "date": pl.Date, "request_id": pl.String, "served_at": UTC, "flight_key": pl.String, "prediction_time": UTC,
    "model_version": pl.String, "role": pl.String, "score": pl.Float64, "latency_ms": pl.Float64,
    "features": pl.String,
}  # fmt: skip


def served_frame(records: list[dict]) -> pl.DataFrame:
    """Typed rows (times parsed from ISO 8601, `features` left as the JSON the service logged)."""
    raw = pl.DataFrame(records, schema={name: pl.String for name in SCHEMA} | {"score": pl.Float64, "latency_ms": pl.Float64})
    return raw.select(
        pl.col("date").str.to_date(),
        "request_id",
        pl.col("served_at").str.to_datetime(time_zone="UTC"),
        "flight_key",
        pl.col("prediction_time").str.to_datetime(time_zone="UTC"),
        "model_version", "role", "score", "latency_ms", "features",
    )  # fmt: skip
