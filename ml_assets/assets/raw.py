"""Raw layer: the source's rows exactly as delivered (all strings) plus provenance."""

import dagster as dg

from ml_assets.assets.common import DAILY, data_version, day_range
from ml_assets.flights.contracts import DAILY_DATASETS, STATIC_DATASETS
from ml_assets.metadata import table_metadata
from ml_assets.resources.sources import DataSource
from ml_assets.resources.storage import DeltaStorage

KINDS = {"polars", "deltalake"}


def raw_daily_asset(dataset: str) -> dg.AssetsDefinition:
    table = f"raw/{dataset}"

    @dg.asset(
        name=f"raw_{dataset}",
        group_name="raw",
        kinds=KINDS,
        code_version="1",
        description=f"Daily {dataset} rows as the source delivered them, with source file and row.",
        **DAILY,
    )
    def _raw(context: dg.AssetExecutionContext, source: DataSource, storage: DeltaStorage):
        start, end = day_range(context)
        frame = source.read_days(dataset, start, end)
        version = storage.write_days(table, frame, start, end)
        context.log.info(f"{table}: {frame.height} rows for {start}..{end}, version {version}")
        return dg.MaterializeResult(
            metadata=table_metadata(frame, storage.table_uri(table), version),
            data_version=data_version(table, version),
        )

    return _raw


def raw_static_asset(dataset: str) -> dg.AssetsDefinition:
    table = f"raw/{dataset}"

    @dg.asset(
        name=f"raw_{dataset}",
        group_name="raw",
        kinds=KINDS,
        code_version="1",
        owners=DAILY["owners"],
        description=f"The {dataset} dimension as the source delivered it.",
    )
    def _raw(source: DataSource, storage: DeltaStorage):
        frame = source.read_table(dataset)
        version = storage.write_table(table, frame)
        return dg.MaterializeResult(
            metadata=table_metadata(frame, storage.table_uri(table), version),
            data_version=data_version(table, version),
        )

    return _raw


raw_assets = [raw_daily_asset(d) for d in DAILY_DATASETS] + [
    raw_static_asset(d) for d in STATIC_DATASETS
]
