"""Quality gates: blocking asset checks computed from a validation result.

The thresholds for each table live in `ml_assets.flights.quality_gates`; this module knows how
to turn them into check specs and results.
"""

import statistics
from dataclasses import dataclass, field
from datetime import date, timedelta

import dagster as dg
import polars as pl

from ml_assets.metadata import markdown_table
from ml_assets.quality.validation import ValidationResult


@dataclass(frozen=True)
class QualityGate:
    max_quarantine_rate: float  # share of the rows in effect that break a rule (repeats, restated rows excluded)
    max_null_rate: dict[str, float] = field(default_factory=dict)  # per column, worst day
    min_rows_per_day: int | None = None  # daily tables only
    # a short delivery: fewer rows than this share of the median of the same weekday in the
    # previous `weekday_weeks` weeks (at least two of them delivered), e.g. a truncated file
    min_weekday_share: float | None = None
    weekday_weeks: int = 4
    short_day_blocks: bool = True  # False: a short day only warns (downstream copes with gaps)

    @property
    def history_days(self) -> int:
        """How many days before a day its short-delivery rule looks at."""
        return 7 * self.weekday_weeks if self.min_weekday_share is not None else 0


# pragma: no mutate start (the checks' descriptions: wording)
CHECKS = {
    "schema_conforms": "The stored rows match the pandera schema exactly (types, rules, no extra columns).",
    "key_unique": "No two stored rows share the table key.",
    "quarantine_rate": "The share of rows in effect breaking a rule stays under the threshold (a repeat of a row, or a row a newer delivery restated, is quarantined but not counted).",
    "null_rates": "Each watched column's null rate stays under its threshold on every day.",
    "rows_per_day": "Every day has at least the minimum number of rows and, where configured, a minimum share of the same weekday's recent median (an empty or cut-short delivery fails).",
}  # fmt: skip
# pragma: no mutate end


def gate_check_specs(
    asset: str, gate: QualityGate, partitions_def: dg.PartitionsDefinition | None = None
) -> list[dg.AssetCheckSpec]:
    """The gates as check specs; a daily table's are partitioned: each day passes or fails on its
    own, so a failed day holds exactly the days downstream that read it."""
    names = [n for n in CHECKS if n != "rows_per_day" or gate.min_rows_per_day is not None]
    return [
        dg.AssetCheckSpec(
            name,
            asset=asset,
            description=CHECKS[name],
            blocking=name != "rows_per_day" or gate.short_day_blocks,
            partitions_def=partitions_def,
        )
        for name in names
    ]


def evaluate_gates(
    result: ValidationResult,
    schema,
    key: list[str],
    gate: QualityGate,
    days: list[date] | None = None,
    earlier_counts: dict[date, int] | None = None,
    cut_off: dict[date, str] | None = None,
) -> list[dg.AssetCheckResult]:
    """All gate results; `days` lists the days delivered (daily tables), empty ones included;
    `earlier_counts` are the stored rows per day before them (the short-delivery rule's history);
    `cut_off` the days whose newest delivery ends mid-line (short whatever their history)."""
    return _gate_results(result, _schema_conforms(result.clean, schema), key, gate, days, earlier_counts, cut_off)


def _gate_results(
    result: ValidationResult,
    schema_conforms: dg.AssetCheckResult,
    key: list[str],
    gate: QualityGate,
    days: list[date] | None,
    earlier_counts: dict[date, int] | None,
    cut_off: dict[date, str] | None,
) -> list[dg.AssetCheckResult]:
    clean = result.clean
    by_day = "date" in clean.columns
    results = [
        schema_conforms,
        _key_unique(clean, key),
        _quarantine_rate(result, gate.max_quarantine_rate),
        _null_rates(clean, gate.max_null_rate, by_day),
    ]
    if gate.min_rows_per_day is not None:
        severity = dg.AssetCheckSeverity.ERROR if gate.short_day_blocks else dg.AssetCheckSeverity.WARN
        counts = (earlier_counts or {}) | rows_by_day(clean, days or [])
        results.append(_rows_per_day(counts, days or [], gate, severity, cut_off or {}))
    return results


def evaluate_gates_by_day(
    result: ValidationResult,
    raw_rows_by_day: dict[date, int],
    schema,
    key: list[str],
    gate: QualityGate,
    days: list[date],
    earlier_counts: dict[date, int] | None = None,
    cut_off: dict[date, str] | None = None,
) -> dict[date, list[dg.AssetCheckResult]]:
    """`evaluate_gates` for each day of a daily table's run on its own (a day's rows, quarantine and
    deliveries); the short-delivery rule of a day sees the days of the run before it."""
    counts = (earlier_counts or {}) | rows_by_day(result.clean, days)
    whole = _schema_conforms(result.clean, schema)  # once for the run: pandera costs ~30 ms a call
    by_day = {}
    for day in days:
        day_result = result.for_day(day, raw_rows_by_day.get(day, 0))
        conforms = whole if whole.passed else _schema_conforms(day_result.clean, schema)
        by_day[day] = _gate_results(day_result, conforms, key, gate, [day], counts, cut_off)
    return by_day


def _schema_conforms(clean: pl.DataFrame, schema) -> dg.AssetCheckResult:
    import pandera.errors

    try:
        schema.validate(clean.select(list(schema.columns)), lazy=True)
    except pandera.errors.SchemaErrors as errors:
        return dg.AssetCheckResult(
            check_name="schema_conforms",
            passed=False,
            metadata={"failures": dg.MetadataValue.md(markdown_table(errors.failure_cases.head(20)))},
        )
    return dg.AssetCheckResult(check_name="schema_conforms", passed=True)


def _key_unique(clean: pl.DataFrame, key: list[str]) -> dg.AssetCheckResult:
    duplicated = clean.height - clean.select(key).unique().height
    return dg.AssetCheckResult(
        check_name="key_unique",
        passed=duplicated == 0,
        metadata={"key": ", ".join(key), "duplicated_rows": duplicated},
    )


def _quarantine_rate(result: ValidationResult, limit: float) -> dg.AssetCheckResult:
    # of the rows in effect: a redelivery restating a day neither dilutes nor doubles its rate
    rate = result.invalid_rows / result.rows_in_effect if result.rows_in_effect else 0.0
    rules = result.rule_counts()
    return dg.AssetCheckResult(
        check_name="quarantine_rate",
        passed=rate <= limit,
        metadata={
            "quarantine_rate": rate,
            "threshold": limit,
            "quarantined_rows": result.quarantined_rows,
            "superseded_rows": result.superseded_rows,
            "delivered_rows": result.raw_rows,
            "violations_by_rule": dg.MetadataValue.json(rules),
        },
    )


def _null_rates(clean: pl.DataFrame, limits: dict[str, float], by_day: bool) -> dg.AssetCheckResult:
    if not limits or clean.is_empty():
        return dg.AssetCheckResult(check_name="null_rates", passed=True, metadata={"columns": len(limits)})
    rates = [pl.col(c).is_null().mean().alias(c) for c in limits]
    per_day = clean.group_by("date").agg(rates) if by_day else clean.select(rates)
    worst = per_day.select(pl.col(list(limits)).max()).row(0, named=True)
    breaches = {c: round(worst[c], 4) for c in limits if worst[c] > limits[c]}
    return dg.AssetCheckResult(
        check_name="null_rates",
        passed=not breaches,
        metadata={
            "worst_day_null_rate": dg.MetadataValue.json({c: round(v, 4) for c, v in worst.items()}),
            "thresholds": dg.MetadataValue.json(limits),
            "breaches": dg.MetadataValue.json(breaches),
        },
    )


def rows_by_day(frame: pl.DataFrame, days: list[date]) -> dict[date, int]:
    """Rows per day of `frame`, zero for the days in `days` it has none of."""
    counts = dict(frame.group_by("date").agg(pl.len()).iter_rows()) if frame.height else {}
    return {day: 0 for day in days} | counts


def short_days(
    counts: dict[date, int], days: list[date], gate: QualityGate, cut_off: dict[date, str] | None = None
) -> pl.DataFrame:
    """The days among `days` (each one in `counts`) whose row count breaks the gate: under the
    minimum, or under `min_weekday_share` of the median of the same weekday's counts in the weeks
    before; and the days in `cut_off` (their newest delivery ends mid-line: short even without a
    history to compare with), with that file."""
    cut_off = cut_off or {}
    rows = []
    for day in sorted(days):
        same_weekday = [counts[earlier] for k in range(1, gate.weekday_weeks + 1)
                        if (earlier := day - timedelta(weeks=k)) in counts]  # fmt: skip
        median = statistics.median(same_weekday) if len(same_weekday) >= 2 else None
        share = counts[day] / median if median else None
        too_few = counts[day] < (gate.min_rows_per_day or 0)
        too_short = gate.min_weekday_share is not None and share is not None and share < gate.min_weekday_share
        if too_few or too_short or day in cut_off:
            rows.append((day, counts[day], median, share, cut_off.get(day)))
    schema = {"date": pl.Date, "rows": pl.Int64, "weekday_median": pl.Float64, "share": pl.Float64, "cut_off": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _rows_per_day(
    counts: dict[date, int],
    days: list[date],
    gate: QualityGate,
    severity: dg.AssetCheckSeverity,
    cut_off: dict[date, str],
) -> dg.AssetCheckResult:
    short = short_days(counts, days, gate, cut_off)
    return dg.AssetCheckResult(
        check_name="rows_per_day",
        passed=short.is_empty(),
        severity=severity,
        metadata={
            "minimum": gate.min_rows_per_day,
            "min_weekday_share": gate.min_weekday_share,
            "fewest_rows": min((counts[day] for day in days), default=0),
            "days": len(days),
            "short_days": dg.MetadataValue.md(markdown_table(short)) if short.height else "none",
            **({"cut_off_files": dg.MetadataValue.json(cut)} if (cut := {str(d): cut_off[d] for d in days if d in cut_off}) else {}),
        },
    )
