"""Processed layer: typed, deduplicated, validated tables; rule breakers go to quarantine."""

import dagster as dg

from ml_assets.assets.common import DAILY, data_version, day_range, days_between
from ml_assets.flights.contracts import DAILY_DATASETS, STATIC_DATASETS
from ml_assets.flights.quality_gates import QUALITY_GATES
from ml_assets.metadata import markdown_table, table_metadata
from ml_assets.quality.gates import evaluate_gates, gate_check_specs
from ml_assets.resources.storage import DeltaStorage

KINDS = {"polars", "deltalake", "pandera"}


def _validate(dataset: str, raw):
    from ml_assets.flights.schemas import TABLES
    from ml_assets.quality.validation import validate_rows

    rules = TABLES[dataset]
    keep = ["date"] if "date" in raw.columns else []
    return rules, validate_rows(raw, rules.schema, rules.key, rules.derive, keep=keep)


def _result(storage: DeltaStorage, table: str, result, version: int, checks, quarantine_version):
    quarantine = result.quarantine
    metadata = table_metadata(result.clean, storage.table_uri(table), version) | {
        "delivered_rows": result.raw_rows,
        "quarantined_rows": result.quarantined_rows,
        "quarantine_table": storage.table_uri(f"quarantine/{table.split('/')[-1]}"),
        "quarantine_table_version": quarantine_version,
        "violations_by_rule": dg.MetadataValue.json(result.rule_counts()),
        "quarantine_sample": dg.MetadataValue.md(
            markdown_table(quarantine.drop("source_record").head(10)) if quarantine.height else "none"
        ),
    }
    return dg.MaterializeResult(
        metadata=metadata, check_results=checks, data_version=data_version(table, version)
    )


def processed_daily_asset(dataset: str) -> dg.AssetsDefinition:
    table, gate = f"processed/{dataset}", QUALITY_GATES[dataset]

    @dg.asset(
        name=dataset,
        group_name="processed",
        deps=[f"raw_{dataset}"],
        kinds=KINDS,
        code_version="1",
        check_specs=gate_check_specs(dataset, gate),
        description=(
            f"Typed, deduplicated {dataset} with UTC timestamps, validated with pandera; "
            f"rows breaking a rule are kept in quarantine/{dataset} with the rule."
        ),
        **DAILY,
    )
    def _processed(context: dg.AssetExecutionContext, storage: DeltaStorage):
        start, end = day_range(context)
        raw = storage.scan(f"raw/{dataset}", start, end).collect()
        rules, result = _validate(dataset, raw)
        quarantine_version = storage.write_days(
            f"quarantine/{dataset}", result.quarantine, start, end
        )
        version = storage.write_days(table, result.clean, start, end)
        context.log.info(
            f"{table}: {result.clean.height} clean, {result.quarantined_rows} quarantined "
            f"of {result.raw_rows} for {start}..{end}"
        )
        checks = evaluate_gates(result, rules.schema, rules.key, gate, days_between(start, end))
        return _result(storage, table, result, version, checks, quarantine_version)

    return _processed


def processed_static_asset(dataset: str) -> dg.AssetsDefinition:
    table, gate = f"processed/{dataset}", QUALITY_GATES[dataset]

    @dg.asset(
        name=dataset,
        group_name="processed",
        deps=[f"raw_{dataset}"],
        kinds=KINDS,
        code_version="1",
        owners=DAILY["owners"],
        check_specs=gate_check_specs(dataset, gate),
        description=f"The typed, validated {dataset} dimension (rule breakers in quarantine).",
    )
    def _processed(storage: DeltaStorage):
        raw = storage.scan(f"raw/{dataset}").collect()
        rules, result = _validate(dataset, raw)
        quarantine_version = storage.write_table(f"quarantine/{dataset}", result.quarantine)
        version = storage.write_table(table, result.clean)
        checks = evaluate_gates(result, rules.schema, rules.key, gate)
        return _result(storage, table, result, version, checks, quarantine_version)

    return _processed


processed_assets = [processed_daily_asset(d) for d in DAILY_DATASETS] + [
    processed_static_asset(d) for d in STATIC_DATASETS
]
