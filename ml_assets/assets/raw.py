"""Raw layer: the source's rows exactly as delivered (all strings) plus provenance."""

import dagster as dg

from ml_assets.assets.common import DAILY, STATIC, data_version, day_range
from ml_assets.flights.contracts import DAILY_DATASETS, STATIC_DATASETS
from ml_assets.metadata import table_metadata
from ml_assets.resources.sources import DataSource
from ml_assets.resources.storage import DeltaStorage


def raw_asset(dataset: str, daily: bool) -> dg.AssetsDefinition:
    table = f"raw/{dataset}"
    what = f"Daily {dataset} rows" if daily else f"The {dataset} dimension"

    @dg.asset(
        name=f"raw_{dataset}",
        group_name="raw",
        kinds={"polars", "deltalake"},
        code_version="1",
        description=f"{what} as the source delivered them, with source file and row.",
        **(DAILY if daily else STATIC),
    )
    def _raw(context: dg.AssetExecutionContext, source: DataSource, storage: DeltaStorage):
        days = day_range(context)
        frame = source.read_days(dataset, *days) if days else source.read_table(dataset)
        version = storage.write(table, frame, days)
        context.log.info(f"{table}: {frame.height} rows, version {version}")
        return dg.MaterializeResult(
            metadata=table_metadata(frame, storage.table_uri(table), version),
            data_version=data_version(table, version),
        )

    return _raw


raw_assets = [raw_asset(d, daily=True) for d in DAILY_DATASETS] + [
    raw_asset(d, daily=False) for d in STATIC_DATASETS
]
