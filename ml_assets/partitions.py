"""Partitions shared by the asset layers."""

import dagster as dg

from ml_assets.settings import PARTITIONS_END, PARTITIONS_START, TIMEZONE

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=PARTITIONS_START, end_date=PARTITIONS_END, timezone=TIMEZONE
)

# Weeks run Monday..Sunday in the same time zone, so each weekly partition is exactly seven
# daily partitions: a week's models train on whole days before it and are evaluated on its days.
weekly_partitions = dg.WeeklyPartitionsDefinition(
    start_date=PARTITIONS_START, end_date=PARTITIONS_END, timezone=TIMEZONE, day_offset=1
)
