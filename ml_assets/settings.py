"""Project-wide settings read from the environment, with defaults that run on a laptop."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# The local time zone of the data: partitions are local calendar days.
TIMEZONE = "America/New_York"

# Daily partitions; the end is exclusive. An empty end makes the partitions open-ended (a live feed).
PARTITIONS_START = os.environ.get("ML_ASSETS_START_DATE", "2013-01-01")
PARTITIONS_END = os.environ.get("ML_ASSETS_END_DATE", "2014-01-01") or None

OWNER = "team:ml-platform"


def _partitions_per_run(text: str | None) -> int | None:
    """ML_ASSETS_PARTITIONS_PER_RUN: the most daily partitions one run of the data layers covers.
    Unset or empty: a range of any length is one run (a laptop's whole year); set it where memory
    is bounded (a pod), since a run holds every day of its range at once."""
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"ML_ASSETS_PARTITIONS_PER_RUN={text!r}: expected a whole number of days >= 1")
    return int(text)


PARTITIONS_PER_RUN = _partitions_per_run(os.environ.get("ML_ASSETS_PARTITIONS_PER_RUN"))


# Whose clock the data keeps: `wall` (a live feed: data time is wall time) or `replay` (a feed of past
# days: freshness follows the landing zone's deliveries, the service its latest event).
WALL_CLOCK, REPLAY_CLOCK = "wall", "replay"


def feed_clock() -> str:
    """ML_ASSETS_FEED_CLOCK: `wall` (unset or empty) or `replay`."""
    kind = os.environ.get("ML_ASSETS_FEED_CLOCK") or WALL_CLOCK
    if kind not in (WALL_CLOCK, REPLAY_CLOCK):
        raise ValueError(f"ML_ASSETS_FEED_CLOCK={kind!r}: expected {WALL_CLOCK!r} or {REPLAY_CLOCK!r}")
    return kind


def data_dir() -> Path:
    """Where the local lake, landing zone and reports live."""
    return Path(os.environ.get("ML_ASSETS_DATA_DIR", PROJECT_ROOT / "data"))


def dagster_home() -> Path:
    """`DAGSTER_HOME` when set, else the project's own instance folder."""
    return Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home")
