"""Fixtures shared by the data-layer tests (named specifically: model tests keep their own)."""

import os
from datetime import date

import dagster as dg
import pytest

from ml_assets.resources.sources import EmbeddedNycflights13, LandingZone
from ml_assets.resources.storage import DeltaStorage
from ml_assets_tests.helpers import write_landing_zone
from ml_assets_tests.threads import limit_openmp_to_share_of_cores

# With the suite on several workers (`make test`: pytest-xdist), each worker's OpenMP (LightGBM,
# torch) gets its share of the cores: two workers each spinning two threads on two cores made
# LightGBM's tests 3x slower. Set before either library loads (nothing above loads them).
if workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    limit_openmp_to_share_of_cores(int(workers))

LANDING_START, LANDING_END = date(2013, 1, 1), date(2013, 1, 2)


@pytest.fixture
def lake_dir(tmp_path):
    """An empty folder for the Delta lake of one test."""
    path = tmp_path / "lake"
    path.mkdir()
    return path


@pytest.fixture
def lake_storage(lake_dir) -> DeltaStorage:
    return DeltaStorage(base_uri=str(lake_dir))


@pytest.fixture
def landing_dir(tmp_path):
    """A landing zone with CSV drops of flights and weather for LANDING_START..LANDING_END
    (embedded rows) and the static tables; tests damage copies of these files."""
    return write_landing_zone(tmp_path / "landing", LANDING_START, LANDING_END)


@pytest.fixture
def landing_source(landing_dir) -> LandingZone:
    return LandingZone(root=str(landing_dir))


@pytest.fixture
def embedded_source() -> EmbeddedNycflights13:
    return EmbeddedNycflights13()


@pytest.fixture
def dagster_instance():
    """A throwaway Dagster instance (in memory)."""
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance
