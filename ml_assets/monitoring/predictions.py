"""Batch scoring of a day's flights, and the score distribution shown with it."""

from datetime import datetime, timezone

import numpy as np
import polars as pl

SCORE_BINS = np.linspace(0.0, 1.0, 11)


def score_days(features: pl.DataFrame, model, identity_columns: list[str]) -> pl.DataFrame:
    """One row per flight: its identity, the model's score, and which model version scored it."""
    scores = model.predict_proba(features) if features.height else np.empty(0)
    return features.select(identity_columns).with_columns(
        score=pl.Series(scores, dtype=pl.Float64),
        model_version=pl.lit(model.version),
        model_kind=pl.lit(model.kind),
        scored_at=pl.lit(datetime.now(timezone.utc)),
    )


def score_summary(predictions: pl.DataFrame) -> dict:
    """Mean and quantiles of the scores, and their histogram as a markdown table."""
    scores = predictions.get_column("score").to_numpy()
    if scores.size == 0:
        return {"scored_flights": 0}
    counts, _ = np.histogram(scores, SCORE_BINS)
    rows = "".join(
        f"| {low:.1f}–{high:.1f} | {count} | {'█' * round(40 * count / scores.size)} |\n"
        for low, high, count in zip(SCORE_BINS[:-1], SCORE_BINS[1:], counts)
    )
    return {
        "scored_flights": int(scores.size),
        "score_mean": float(scores.mean()),
        **{f"score_p{q}": float(np.quantile(scores, q / 100)) for q in (10, 50, 90)},
        "score_histogram": "| score | flights | |\n|---|---|---|\n" + rows,
    }
