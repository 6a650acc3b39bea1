"""Partitions shared by the asset layers."""

import dagster as dg

from ml_assets.settings import PARTITIONS_END, PARTITIONS_START, TIMEZONE

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=PARTITIONS_START, end_date=PARTITIONS_END, timezone=TIMEZONE
)
