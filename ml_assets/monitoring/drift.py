"""Drift of a day against a reference, computed by Evidently, calibrated, and judged.

`drift_scores` runs Evidently's statistics per column (normed Wasserstein distance and KS p-value
for numeric columns, PSI for all); `calibrate` scores each day of the reference window to learn a
column's normal day-to-day range; `judge` compares a day's scores with that range and with the
recent days' (thresholds and their reasons: `monitoring.thresholds`).
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from ml_assets.monitoring import thresholds

SCORES_SCHEMA = {
    "column": pl.String,
    "statistic": pl.String,  # the one that decides: wasserstein (numeric) or psi (categorical)
    "value": pl.Float64,
    "psi": pl.Float64,
    "ks_p_value": pl.Float64,
    "wasserstein": pl.Float64,
    "current_rows": pl.Int64,
    "note": pl.String,
}


def deciding_statistic(column: str, categorical: set[str]) -> str:
    return "psi" if column in categorical else "wasserstein"


def drift_scores(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    columns: list[str],
    categorical: set[str],
    deciding_only: bool = False,
) -> pl.DataFrame:
    """One row per column: Evidently's statistics of `current` against `reference` (with
    `deciding_only`, the deciding one alone). A column without values on either side is not
    scored (Evidently refuses an empty column): its note says which side is empty."""
    from evidently.legacy.calculations.stattests import ks_stat_test, psi_stat_test, wasserstein_stat_test
    from evidently.legacy.core import ColumnType

    tests = {"psi": psi_stat_test, "ks_p_value": ks_stat_test, "wasserstein": wasserstein_stat_test}
    rows = []
    for column in columns:
        ref, cur = _values(reference, column), _values(current, column)
        statistic = deciding_statistic(column, categorical)
        row = dict.fromkeys(SCORES_SCHEMA) | {"column": column, "statistic": statistic, "current_rows": len(cur)}
        if len(ref) == 0 or len(cur) == 0:
            side = "reference" if len(ref) == 0 else "current day"
            rows.append(row | {"note": f"no values in the {side}"})
            continue
        numeric = column not in categorical
        kind = ColumnType.Numerical if numeric else ColumnType.Categorical  # a plain "num" makes PSI count values
        computed = [statistic] if deciding_only else ["psi", "ks_p_value", "wasserstein"] if numeric else ["psi"]
        for name in computed:  # the threshold argument does not change the statistic returned
            row[name] = float(tests[name].func(ref, cur, kind, 0.1)[0])
        row["value"] = row[statistic]
        rows.append(row)
    return pl.DataFrame(rows, schema=SCORES_SCHEMA)


def _values(frame: pl.DataFrame, column: str):
    series = frame.get_column(column).drop_nulls()
    if series.dtype != pl.String:
        series = series.cast(pl.Float64).filter(series.cast(pl.Float64).is_finite())
    return series.to_pandas()


def calibrate(
    reference: pl.DataFrame, window: pl.DataFrame, columns: list[str], categorical: set[str]
) -> pl.DataFrame:
    """The largest score of each column over the days of the reference window, each day scored
    against the reference: the column's normal day-to-day range (`window_max`). Only the deciding
    statistic is computed: the KS test and a numeric column's PSI would triple the time."""
    days = [window.filter(pl.col("date") == day) for day in window.get_column("date").unique().sort()]
    scored = pl.concat([drift_scores(reference, day, columns, categorical, deciding_only=True) for day in days])
    return scored.group_by("column", "statistic", maintain_order=True).agg(
        window_max=pl.col("value").max(), window_days=pl.col("value").count()
    )


def recent_days(day: date) -> tuple[date, date]:
    """The first and last of the earlier days whose scores make `day`'s recent band."""
    return day - timedelta(days=thresholds.RECENT_DAYS), day - timedelta(days=1)


def judge(scores: pl.DataFrame, calibration: pl.DataFrame, recent: pl.DataFrame) -> pl.DataFrame:
    """`scores` with each column's band (the larger of its window range and its recent median),
    the ratio of its score to that band, and whether it drifted (ratio above DRIFT_RATIO).
    `recent`: earlier days' scores against the same reference (`date`, `column`, `value`)."""
    recent_median = (
        recent.group_by("column")
        .agg(recent_median=pl.col("value").median(), recent_days=pl.col("date").n_unique())
        .with_columns(
            pl.when(pl.col("recent_days") >= thresholds.MIN_RECENT_DAYS).then(pl.col("recent_median"))
        )
    )
    band = pl.max_horizontal("window_max", pl.col("recent_median").fill_null(0.0))
    judged = (
        scores.join(calibration.select("column", "window_max"), on="column", how="left")
        .join(recent_median.select("column", "recent_median"), on="column", how="left")
        .with_columns(band=band)
        .with_columns(ratio=pl.when(pl.col("band") > 0).then(pl.col("value") / pl.col("band")))
    )
    return judged.with_columns(drifted=(pl.col("ratio") > thresholds.DRIFT_RATIO).fill_null(False))


def check_day(reference, current: pl.DataFrame, columns: list[str], recent: pl.DataFrame, severity_of):
    """One day's drift against a stored `DriftReference`: the judged columns and the severity
    (None, "WARN" or "ERROR") that `severity_of` gives them."""
    from ml_assets.monitoring.reference import CATEGORICAL

    calibration = reference.calibration.filter(pl.col("column").is_in(columns))
    judged = judge(drift_scores(reference.rows, current, columns, CATEGORICAL), calibration, recent)
    return judged, severity_of(judged)


def feature_severity(judged: pl.DataFrame) -> str | None:
    """None (no drift), "WARN" (a drifted feature) or "ERROR" (several: the day is unlike the
    data the champion learnt from)."""
    drifted = int(judged.get_column("drifted").sum())
    if drifted >= thresholds.FEATURE_DRIFT_ERROR_COLUMNS:
        return "ERROR"
    return "WARN" if drifted else None


def score_severity(judged: pl.DataFrame) -> str | None:
    ratio = judged.get_column("ratio").max()  # None when no column has a ratio
    return "ERROR" if ratio is not None and ratio > thresholds.SCORE_DRIFT_ERROR_RATIO else None


def write_html_report(
    reference: pl.DataFrame, current: pl.DataFrame, judged: pl.DataFrame, categorical: set[str], path: Path, top: int = 8
) -> Path:
    """Evidently's HTML report of the drifted columns and the highest ratios (at most `top`)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    shown = (
        judged.filter(pl.col("value").is_not_null())
        .sort(["drifted", "ratio"], descending=True, nulls_last=True)
        .head(max(top, int(judged.get_column("drifted").sum())))
    )
    columns = shown.get_column("column").to_list()
    numeric = [c for c in columns if c not in categorical]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=[c for c in columns if c in categorical])
    metrics = [ValueDrift(column=c, method=deciding_statistic(c, categorical)) for c in columns]

    def dataset(frame: pl.DataFrame) -> Dataset:
        pandas = frame.select(
            *(pl.col(c).cast(pl.String) for c in columns if c in categorical),
            *(pl.col(c).cast(pl.Float64) for c in numeric),
        ).to_pandas()
        return Dataset.from_pandas(pandas, data_definition=definition)

    path.parent.mkdir(parents=True, exist_ok=True)
    Report(metrics).run(dataset(current), dataset(reference)).save_html(str(path))
    return path


def drift_table_markdown(judged: pl.DataFrame, limit: int = 60) -> str:
    """Per-column results, drifted first, as a markdown table for the check's metadata."""
    shown = judged.sort(["drifted", "ratio"], descending=True, nulls_last=True).head(limit)
    lines = ["| column | drifted | statistic | value | band | ratio | PSI | KS p | note |", "|---|---|---|---|---|---|---|---|---|"]
    for row in shown.iter_rows(named=True):
        cells = [row["column"], "**yes**" if row["drifted"] else "no", row["statistic"]]
        cells += [_fmt(row[k]) for k in ("value", "band", "ratio", "psi", "ks_p_value")]
        lines.append("| " + " | ".join([*cells, row["note"] or ""]) + " |")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3g}"


def sample(frame: pl.DataFrame, rows: int, seed: int) -> pl.DataFrame:
    """A seeded sample of at most `rows` rows (all of them when the frame is smaller)."""
    return frame.sample(min(rows, frame.height), seed=seed)

