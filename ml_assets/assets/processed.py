"""Processed layer: typed, deduplicated, validated tables; rule breakers go to quarantine."""

from datetime import date, timedelta

import dagster as dg
import polars as pl

from ml_assets.assets.common import DAILY, STATIC, check_results_by_day, data_version, day_range
from ml_assets.dates import days_between
from ml_assets.flights.contracts import DAILY_DATASETS, STATIC_DATASETS
from ml_assets.flights.quality_gates import QUALITY_GATES
from ml_assets.metadata import markdown_table, table_metadata
from ml_assets.partitions import daily_partitions
from ml_assets.quality.gates import evaluate_gates, evaluate_gates_by_day, gate_check_specs
from ml_assets.resources.storage import DeltaStorage


def processed_asset(dataset: str, daily: bool) -> dg.AssetsDefinition:
    table, quarantine_table, gate = f"processed/{dataset}", f"quarantine/{dataset}", QUALITY_GATES[dataset]
    what = f"Daily {dataset}, typed and deduplicated with UTC timestamps" if daily else f"The {dataset} dimension, typed"

    @dg.asset(
        name=dataset,
        group_name="processed",
        deps=[f"raw_{dataset}"],
        kinds={"polars", "deltalake", "pandera"},
        code_version="1",
        check_specs=gate_check_specs(dataset, gate, daily_partitions if daily else None),
        description=(
            f"{what}, validated with pandera; rows breaking a rule are kept in "
            f"{quarantine_table} with the rule, the value and the source row."
        ),
        **(DAILY if daily else STATIC),
    )  # fmt: skip
    def _processed(context: dg.AssetExecutionContext, storage: DeltaStorage):
        from ml_assets.flights.schemas import TABLES
        from ml_assets.quality.validation import validate_rows
        from ml_assets.resources.sources import cut_off_days

        days = day_range(context)
        rules = TABLES[dataset]
        raw = storage.scan(f"raw/{dataset}", *(days or ())).collect()
        earlier = stored_rows_by_day(storage, table, days[0], gate.history_days) if days else {}
        result = validate_rows(
            raw, rules.schema, rules.key, rules.derive, keep=["date"] if daily else []
        )
        quarantine_version = storage.write(quarantine_table, result.quarantine, days)
        version = storage.write(table, result.clean, days)
        context.log.info(
            f"{table}: {result.clean.height} clean, {result.quarantined_rows} quarantined "
            f"of {result.raw_rows}, version {version}"
        )
        sample = result.quarantine.drop("source_record").head(10)
        metadata = table_metadata(result.clean, storage.table_uri(table), version) | {
            "delivered_rows": result.raw_rows,
            "quarantined_rows": result.quarantined_rows,
            "quarantine_table": storage.table_uri(quarantine_table),
            "quarantine_table_version": quarantine_version,
            "violations_by_rule": dg.MetadataValue.json(result.rule_counts()),
            "quarantine_sample": dg.MetadataValue.md(markdown_table(sample) if sample.height else "none"),
        }  # fmt: skip
        if not days:
            checks = evaluate_gates(result, rules.schema, rules.key, gate)
            yield dg.MaterializeResult(metadata=metadata, check_results=checks, data_version=data_version(table, version))
            return
        yield dg.MaterializeResult(metadata=metadata, data_version=data_version(table, version))
        delivered = dict(raw.group_by("date").agg(pl.len()).iter_rows())
        yield from check_results_by_day(context, evaluate_gates_by_day(
            result, delivered, rules.schema, rules.key, gate, days_between(*days), earlier, cut_off_days(raw)
        ))  # fmt: skip

    return _processed


def stored_rows_by_day(storage: DeltaStorage, table: str, before: date, history_days: int) -> dict[date, int]:
    """Rows per day already stored for the `history_days` days before `before`."""
    if not history_days or not storage.exists(table):
        return {}
    first, last = before - timedelta(days=history_days), before - timedelta(days=1)
    counts = storage.scan(table, first, last).group_by("date").agg(pl.len()).collect()
    return dict(counts.iter_rows())


processed_assets = [processed_asset(d, daily=True) for d in DAILY_DATASETS] + [
    processed_asset(d, daily=False) for d in STATIC_DATASETS
]
