"""Sensors: new deliveries in the landing zone trigger the data layers for their days."""

import json
from datetime import date

import dagster as dg

from ml_assets.flights.contracts import DAILY_DATASETS
from ml_assets.partitions import daily_partitions
from ml_assets.resources.sources import DataSource, LandingZone
from ml_assets.run_tags import LANDING_ZONE_RUN_TAGS

Files = dict[str, tuple[date, int]]  # path → (day, modification time in ns)


def ready_days(files_by_dataset: dict[str, Files], seen: dict[str, int]) -> dict[date, Files]:
    """Days with a new or changed file and a delivery of every daily dataset → their files."""
    complete = set.intersection(
        *({day for day, _ in files.values()} for files in files_by_dataset.values())
    )
    by_day: dict[date, Files] = {}
    for files in files_by_dataset.values():
        for path, (day, modified) in files.items():
            if day in complete:
                by_day.setdefault(day, {})[path] = (day, modified)
    return {
        day: files
        for day, files in sorted(by_day.items())
        if any(seen.get(path) != modified for path, (_, modified) in files.items())
    }


@dg.sensor(
    job_name="data_layers",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the landing zone (ML_ASSETS_LANDING_DIR) and runs raw → processed → features "
        "for each day once every daily dataset has been delivered; a redelivery runs the day again."
    ),
)
def landing_zone_sensor(context: dg.SensorEvaluationContext, source: DataSource):
    if not isinstance(source, LandingZone):
        return dg.SkipReason("the source is the embedded dataset: nothing lands")
    seen = json.loads(context.cursor) if context.cursor else {}
    files = {dataset: source.daily_files(dataset) for dataset in DAILY_DATASETS}
    partitions = set(daily_partitions.get_partition_keys())
    days = {d: f for d, f in ready_days(files, seen).items() if d.isoformat() in partitions}
    requests = [
        dg.RunRequest(
            partition_key=day.isoformat(),
            # The same files never run twice; a redelivery (a newer file) runs the day again.
            run_key=f"{day}@{max(modified for _, modified in day_files.values())}",
            tags=LANDING_ZONE_RUN_TAGS,
        )
        for day, day_files in days.items()
    ]
    handled = {path: m for day_files in days.values() for path, (_, m) in day_files.items()}
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen | handled))
