"""Row-level validation: raw string rows in, typed clean rows and quarantined rows out.

A pandera schema is the single statement of a table's types and rules. Every raw row either
lands in `clean` or in `quarantine` (once per rule it breaks, with the rule, the offending
value and the whole source row), so nothing is silently dropped.

Raw rows arrive in delivery order (one source file after another). A redelivery is a correction:
for each key the row of the newest delivery wins, and the rows it replaces are quarantined as
`superseded`. Within one delivery the first row of a key wins and repeats are `duplicate_key`.
Neither counts as breaking a rule (they are kept, not rejected). A row that broke a rule and is
restated by a newer delivery keeps its broken rules in quarantine and is also `superseded`: the
correction is what counts, so it no longer counts as invalid.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl

from ml_assets.flights.contracts import NULL_MARKERS

ROW_ID = "_row_id"
DUPLICATE_RULE = "duplicate_key"
SUPERSEDED_RULE = "superseded"
NOT_INVALID = (DUPLICATE_RULE, SUPERSEDED_RULE)  # kept in quarantine, not a broken rule
DELIVERY = "_delivery"
PROVENANCE = ["_source_file", "_source_row"]
FAILURE_SCHEMA = {ROW_ID: pl.UInt32, "rule": pl.String, "column": pl.String, "value": pl.String}
QUARANTINE_SCHEMA = {
    "rule": pl.String,
    "column": pl.String,
    "value": pl.String,
    "_source_file": pl.String,
    "_source_row": pl.Int64,
    "source_record": pl.String,
}


@dataclass(frozen=True)
class ValidationResult:
    clean: pl.DataFrame
    quarantine: pl.DataFrame
    raw_rows: int

    @property
    def quarantined_rows(self) -> int:
        return self.quarantine.select(PROVENANCE).unique().height

    @property
    def superseded_rows(self) -> int:
        """Delivered rows a newer delivery restated (valid or not)."""
        return self._rows_under(pl.col("rule") == SUPERSEDED_RULE).height

    @property
    def rows_in_effect(self) -> int:
        """Delivered rows no newer delivery restated: what the day's data is made of."""
        return self.raw_rows - self.superseded_rows

    @property
    def invalid_rows(self) -> int:
        """Rows in effect that break a rule (not a repeat, not superseded by a redelivery)."""
        invalid = self._rows_under(~pl.col("rule").is_in(NOT_INVALID))
        return invalid.join(self._rows_under(pl.col("rule") == SUPERSEDED_RULE), on=PROVENANCE, how="anti").height

    def _rows_under(self, rule: pl.Expr) -> pl.DataFrame:
        return self.quarantine.filter(rule).select(PROVENANCE).unique()

    def for_day(self, day, raw_rows: int) -> "ValidationResult":
        """The result of one day of a daily table (`raw_rows` delivered for it)."""
        on_day = pl.col("date") == day
        return ValidationResult(self.clean.filter(on_day), self.quarantine.filter(on_day), raw_rows)

    def rule_counts(self) -> dict[str, int]:
        counts = self.quarantine.group_by("rule").len().sort("len", descending=True)
        return dict(counts.iter_rows())


def validate_rows(
    raw: pl.DataFrame,
    schema,  # pandera.polars.DataFrameSchema
    key: Sequence[str],
    derive: Callable[[pl.DataFrame], pl.DataFrame] = lambda frame: frame,
    keep: Sequence[str] = (),
) -> ValidationResult:
    """Type `raw` by `schema`, add `derive`d columns, split rows into clean and quarantine.

    Rules, in order: malformed row (from the source), type (the string does not parse as the
    column's type), the schema's checks, then the key: among the rows passing every rule, the
    newest delivery wins (`superseded`), and within a delivery the first row (`duplicate_key`).
    `keep` names raw columns (such as the partition `date`) carried through untouched.
    """
    import pandera.errors

    raw = raw.with_row_index(ROW_ID)
    columns = {n: c.dtype for n, c in schema.columns.items() if n in raw.columns and n not in keep}
    typed = derive(raw.select(ROW_ID, *keep, *PROVENANCE, *_typed_columns(columns)))
    failures = [_malformed_failures(raw), _type_failures(raw, typed, columns)]
    try:
        schema.validate(typed.drop(ROW_ID, *PROVENANCE, strict=False), lazy=True)
    except pandera.errors.SchemaErrors as errors:
        failures.append(_check_failures(errors.failure_cases, typed))
    failures = pl.concat(failures)
    rejected = failures.select(ROW_ID).unique()
    passing = typed.join(rejected, on=ROW_ID, how="anti")
    winners = _newest_delivery_wins(passing, key)
    failures = pl.concat([failures, _key_failures(passing, winners, key), _restated_rejections(typed, rejected, key)])
    clean = winners.sort(ROW_ID).select(*schema.columns, *PROVENANCE)
    return ValidationResult(clean, _quarantine(raw, failures), raw.height)


def _typed_columns(columns: dict) -> list[pl.Expr]:
    """Parse each raw string column as its schema type; unparseable values become null."""
    typed = []
    for name, pandera_dtype in columns.items():
        text = pl.col(name).str.strip_chars()
        text = pl.when(text.is_in(NULL_MARKERS)).then(None).otherwise(text)
        dtype = pandera_dtype.type
        if dtype == pl.Datetime:
            parsed = text.str.to_datetime(
                "%Y-%m-%dT%H:%M:%SZ", strict=False, time_unit=dtype.time_unit, time_zone="UTC"
            )
        elif dtype.is_integer():
            # an integer column written as floats (pandas does so for columns with nulls, e.g.
            # in parquet drops) arrives as "517.0": accept integral values, reject "5.5"
            as_float = text.cast(pl.Float64, strict=False)
            integral = pl.when(as_float == as_float.round()).then(as_float).cast(dtype, strict=False)
            parsed = pl.coalesce(text.cast(dtype, strict=False), integral)
        else:
            parsed = text.cast(dtype, strict=False)
        typed.append(parsed.alias(name))
    return typed


def _failure_frame(ids: pl.Expr, rule: pl.Expr, column: pl.Expr, value: pl.Expr) -> list[pl.Expr]:
    return [
        ids.cast(pl.UInt32).alias(ROW_ID),
        rule.cast(pl.String).alias("rule"),
        column.cast(pl.String).alias("column"),
        value.cast(pl.String).alias("value"),
    ]


def _malformed_failures(raw: pl.DataFrame) -> pl.DataFrame:
    rows = raw.filter(pl.col("_malformed").is_not_null())
    return rows.select(
        _failure_frame(pl.col(ROW_ID), pl.lit("malformed_row"), pl.lit(None), pl.col("_malformed"))
    )


def _type_failures(raw: pl.DataFrame, typed: pl.DataFrame, columns: dict) -> pl.DataFrame:
    frames = []
    for name, dtype in columns.items():
        text = raw.get_column(name).str.strip_chars()
        failed = text.is_not_null() & ~text.is_in(NULL_MARKERS) & typed.get_column(name).is_null()
        rows = raw.filter(failed)
        frames.append(
            rows.select(
                _failure_frame(
                    pl.col(ROW_ID), pl.lit(f"type({dtype})"), pl.lit(name), pl.col(name)
                )
            )
        )
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=FAILURE_SCHEMA)


def _check_failures(cases: pl.DataFrame, typed: pl.DataFrame) -> pl.DataFrame:
    """pandera failure cases carry the row position in `index`; a null index means a
    table-level failure (such as a missing column), which is a bug in `derive`, not bad data."""
    table_level = cases.filter(pl.col("index").is_null())
    if table_level.height:
        raise ValueError(f"schema failure not tied to rows:\n{table_level}")
    row_ids = typed.get_column(ROW_ID).gather(cases.get_column("index"))
    return cases.with_columns(row_ids).select(
        _failure_frame(pl.col(ROW_ID), pl.col("check"), pl.col("column"), pl.col("failure_case"))
    )


def _with_delivery(frame: pl.DataFrame) -> pl.DataFrame:
    """Number each row's source file in delivery order (rows arrive file after file)."""
    first_row = pl.col(ROW_ID).min().over("_source_file")
    return frame.with_columns(first_row.rank("dense").alias(DELIVERY))


def _newest_delivery_wins(passing: pl.DataFrame, key: Sequence[str]) -> pl.DataFrame:
    """Per key, the first row of the newest delivery that has one."""
    ordered = _with_delivery(passing).sort([DELIVERY, ROW_ID], descending=[True, False])
    return ordered.unique(subset=list(key), keep="first", maintain_order=True)


def _key_failures(passing: pl.DataFrame, winners: pl.DataFrame, key: Sequence[str]) -> pl.DataFrame:
    """The rows that lost to a winner: superseded by a newer delivery, or repeated within one."""
    losers = _with_delivery(passing).join(winners.select(ROW_ID), on=ROW_ID, how="anti")
    losers = losers.join(winners.select(*key, pl.col(DELIVERY).alias("_winner")), on=list(key))
    rule = pl.when(pl.col(DELIVERY) < pl.col("_winner")).then(pl.lit(SUPERSEDED_RULE))
    value = pl.concat_str([pl.col(k).cast(pl.String) for k in key], separator="|")
    return losers.select(
        _failure_frame(pl.col(ROW_ID), rule.otherwise(pl.lit(DUPLICATE_RULE)), pl.lit(",".join(key)), value)
    )


def _restated_rejections(typed: pl.DataFrame, rejected: pl.DataFrame, key: Sequence[str]) -> pl.DataFrame:
    """Rejected rows whose key a newer delivery states again (validly or not): `superseded`."""
    numbered = _with_delivery(typed)
    newest = numbered.drop_nulls(list(key)).group_by(list(key)).agg(pl.col(DELIVERY).max().alias("_newest"))
    restated = numbered.join(rejected, on=ROW_ID, how="semi").join(newest, on=list(key))
    restated = restated.filter(pl.col(DELIVERY) < pl.col("_newest"))
    value = pl.concat_str([pl.col(k).cast(pl.String) for k in key], separator="|")
    return restated.select(_failure_frame(pl.col(ROW_ID), pl.lit(SUPERSEDED_RULE), pl.lit(",".join(key)), value))


def _quarantine(raw: pl.DataFrame, failures: pl.DataFrame) -> pl.DataFrame:
    """One row per (source row, broken rule) with the full source row as JSON."""
    source = raw.drop("_malformed").select(
        ROW_ID,
        *PROVENANCE,
        *[c for c in raw.columns if c == "date"],
        source_record=pl.struct(
            [c for c in raw.columns if c not in (ROW_ID, "_malformed", *PROVENANCE)]
        ).struct.json_encode(),
    )
    quarantine = failures.join(source, on=ROW_ID).sort(ROW_ID).drop(ROW_ID)
    return quarantine.select(*[c for c in ("date",) if c in quarantine.columns], *QUARANTINE_SCHEMA)
