"""Freshness expectations, applied centrally to every asset in `definitions.py`.

Asset-level policies judge the latest materialization of any partition; the per-partition SLA
(yesterday's partition exists by the morning deadline) is a set of freshness checks.
"""

from datetime import timedelta

import dagster as dg

from ml_assets.settings import TIMEZONE

DAILY_DEADLINE_CRON = "0 9 * * *"  # yesterday's partition must exist by 09:00 local

POLICY_BY_GROUP = {
    "raw": dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=30), warn_window=timedelta(hours=26)),
    "processed": dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=30), warn_window=timedelta(hours=26)),
    "features": dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=32), warn_window=timedelta(hours=27)),
    # weekly: models train at the start of a week, its evaluation follows once its labels are in
    "training": dg.FreshnessPolicy.time_window(fail_window=timedelta(days=8), warn_window=timedelta(days=7, hours=12)),
    "evaluation": dg.FreshnessPolicy.time_window(fail_window=timedelta(days=9), warn_window=timedelta(days=8, hours=12)),
    "serving": dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=32), warn_window=timedelta(hours=27)),
}  # fmt: skip
STATIC_POLICY = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=8), warn_window=timedelta(days=7))


def with_freshness(spec: dg.AssetSpec) -> dg.AssetSpec:
    """Partitioned layers by group; unpartitioned dimensions are refreshed weekly."""
    policy = POLICY_BY_GROUP.get(spec.group_name) if spec.partitions_def else STATIC_POLICY
    return dg.apply_freshness_policy(spec, policy) if policy else spec


def partition_freshness(daily_assets: list[dg.AssetsDefinition]) -> tuple[list, dg.SensorDefinition]:
    """Per-partition SLA checks plus the sensor that evaluates them. (Dagster marks these as
    superseded by freshness policies, but policies ignore partitions, so both are needed.)"""
    checks = dg.build_time_partition_freshness_checks(
        assets=daily_assets, deadline_cron=DAILY_DEADLINE_CRON, timezone=TIMEZONE
    )
    sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=checks, default_status=dg.DefaultSensorStatus.RUNNING
    )
    return list(checks), sensor
