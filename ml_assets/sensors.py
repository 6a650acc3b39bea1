"""Sensors: new deliveries in the landing zone trigger the data layers for their days."""

import hashlib
import json
from datetime import date

import dagster as dg

from ml_assets.flights.contracts import DAILY_DATASETS
from ml_assets.partitions import daily_partitions
from ml_assets.resources.sources import DataSource, LandingZone

Files = dict[str, tuple[date, int, int]]  # path → (day, modification time in ns, size)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hashes(files: Files, known: dict[str, list]) -> dict[str, str]:
    """sha256 of each file's bytes; a file whose time and size are unchanged since `known`
    (path → [mtime, size, sha256]) keeps its hash without being read again."""
    hashes = {}
    for path, (_, modified, size) in files.items():
        seen = known.get(path)
        hashes[path] = seen[2] if seen and seen[:2] == [modified, size] else file_sha256(path)
    return hashes


def day_digests(files_by_dataset: dict[str, Files], hashes: dict[str, str]) -> dict[date, str]:
    """Days with a delivery of every daily dataset → a digest of the set of their files'
    contents: a redelivery with new bytes changes it, a copy or a touched file does not."""
    contents: dict[date, dict[str, set[str]]] = {}
    for dataset, files in files_by_dataset.items():
        for path, (day, _, _) in files.items():
            contents.setdefault(day, {}).setdefault(dataset, set()).add(hashes[path])
    return {
        day: hashlib.sha256(json.dumps({d: sorted(h) for d, h in by_dataset.items()}, sort_keys=True).encode()).hexdigest()
        for day, by_dataset in sorted(contents.items())
        if set(by_dataset) == set(files_by_dataset)
    }


@dg.sensor(
    job_name="data_layers",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the landing zone (ML_ASSETS_LANDING_DIR) and runs raw → processed → features "
        "for each day once every daily dataset has been delivered; a delivery with new content "
        "runs the day again, the same content (a copy, a touched file) never twice."
    ),
)
def landing_zone_sensor(context: dg.SensorEvaluationContext, source: DataSource):
    if not isinstance(source, LandingZone):
        return dg.SkipReason("the source is the embedded dataset: nothing lands")
    cursor = json.loads(context.cursor) if context.cursor else {}
    files = {dataset: source.daily_files(dataset) for dataset in DAILY_DATASETS}
    every_file = {path: stat for dataset_files in files.values() for path, stat in dataset_files.items()}
    hashes = content_hashes(every_file, cursor.get("files", {}))
    requested = cursor.get("days", {})
    partitions = set(daily_partitions.get_partition_keys())
    new = {
        day.isoformat(): digest
        for day, digest in day_digests(files, hashes).items()
        if day.isoformat() in partitions and requested.get(day.isoformat()) != digest
    }
    requests = [
        # the run key also keeps Dagster from launching the same content twice
        dg.RunRequest(partition_key=day, run_key=f"{day}@{digest[:16]}", tags={"ml_assets/trigger": "landing_zone"})
        for day, digest in new.items()
    ]
    seen = {path: [modified, size, hashes[path]] for path, (_, modified, size) in every_file.items()}
    return dg.SensorResult(run_requests=requests, cursor=json.dumps({"files": seen, "days": requested | new}))
