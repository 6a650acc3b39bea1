"""The code location loads, and its asset graph is the one the design describes."""

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.definitions import defs
from ml_assets.resources import resources_for_env
from ml_assets.resources.sources import EmbeddedNycflights13, LandingZone
from ml_assets.resources.storage import DeltaStorage
from ml_assets.settings import OWNER, PROJECT_ROOT

DATA_GROUPS = {"raw", "processed", "features"}

# The lineage raw -> processed -> features: each data asset and what it reads.
LINEAGE = {
    "raw_flights": set(), "raw_weather": set(),
    "raw_planes": set(), "raw_airports": set(), "raw_airlines": set(),
    "flights": {"raw_flights"}, "weather": {"raw_weather"},
    "planes": {"raw_planes"}, "airports": {"raw_airports"}, "airlines": {"raw_airlines"},
    "flight_features": {"flights", "weather", "planes"},
}  # fmt: skip
GROUPS = {
    "raw": {"raw_flights", "raw_weather", "raw_planes", "raw_airports", "raw_airlines"},
    "processed": {"flights", "weather", "planes", "airports", "airlines"},
    "features": {"flight_features"},
}
DAILY = {"raw_flights", "raw_weather", "flights", "weather", "flight_features"}


@pytest.fixture(scope="module")
def graph():
    return defs.resolve_asset_graph()


def materializable(graph):
    return [graph.get(key) for key in graph.get_all_asset_keys() if graph.get(key).is_materializable]


def data_nodes(graph) -> dict:
    return {n.key.to_user_string(): n for n in materializable(graph) if n.group_name in DATA_GROUPS}


def test_dagster_definitions_validate_loads_the_code_location(tmp_path):
    env = os.environ | {
        "DAGSTER_HOME": str(tmp_path),
        "ML_ASSETS_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "ml_assets.definitions"]

    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful for code location ml_assets.definitions" in done.stdout + done.stderr
    assert not (tmp_path / "data").exists()  # loading touches no data


def test_lineage_raw_processed_features(graph):
    nodes = data_nodes(graph)
    lineage = {key: {p.to_user_string() for p in node.parent_keys} for key, node in nodes.items()}

    assert lineage == LINEAGE
    groups = {g: {k for k, n in nodes.items() if n.group_name == g} for g in DATA_GROUPS}
    assert groups == GROUPS


def test_every_materializable_asset_carries_its_production_attributes(graph):
    for node in materializable(graph):
        name = node.key.to_user_string()
        assert node.group_name and node.group_name != "default", name
        assert OWNER in node.owners, name
        assert node.code_version, name
        assert node.kinds, name
        assert node.description and len(node.description) > 20, name
        assert node.freshness_policy is not None, name


def test_freshness_policies_by_layer(graph):
    nodes = data_nodes(graph)
    fail_hours = {
        k: n.freshness_policy.fail_window.to_timedelta().total_seconds() / 3600
        for k, n in nodes.items()
    }

    assert all(fail_hours[k] <= 32 for k in DAILY)  # daily layers: within a day and a bit
    assert all(fail_hours[k] == 8 * 24 for k in set(nodes) - DAILY)  # dimensions: weekly


def test_daily_partitions_cover_2013_in_new_york_time(graph):
    nodes = data_nodes(graph)
    partitioned = {k for k, n in nodes.items() if n.partitions_def is not None}
    assert partitioned == DAILY

    partitions = nodes["flights"].partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    assert partitions.timezone == "America/New_York"
    keys = partitions.get_partition_keys()
    assert (len(keys), keys[0], keys[-1]) == (365, "2013-01-01", "2013-12-31")
    assert all(nodes[k].partitions_def == partitions for k in DAILY)
    assert all(nodes[k].backfill_policy == dg.BackfillPolicy.single_run() for k in DAILY)


def test_features_read_trailing_windows_of_their_inputs():
    features = defs.resolve_assets_def("flight_features")
    flights = features.get_partition_mapping(dg.AssetKey("flights"))
    weather = features.get_partition_mapping(dg.AssetKey("weather"))

    assert isinstance(flights, dg.TimeWindowPartitionMapping)
    assert (flights.start_offset, flights.end_offset) == (-29, 0)  # 28 history days + 1 label lag
    assert (weather.start_offset, weather.end_offset) == (-1, 0)

    partitions = features.partitions_def
    upstream = flights.get_upstream_mapped_partitions_result_for_partitions(
        partitions.subset_with_partition_keys(["2013-03-15"]), partitions, partitions
    ).partitions_subset.get_partition_keys()
    assert (len(upstream), min(upstream), max(upstream)) == (30, "2013-02-14", "2013-03-15")


def test_quality_gates_block_downstream(graph):
    specs = {
        (s.asset_key.to_user_string(), s.name): s.blocking
        for a in defs.assets
        if isinstance(a, dg.AssetsDefinition)
        for s in a.check_specs
    }
    for table in ("flights", "weather", "planes", "airports", "airlines"):
        for gate in ("schema_conforms", "key_unique", "quarantine_rate", "null_rates"):
            assert specs[(table, gate)] is True, (table, gate)
    assert specs[("flights", "rows_per_day")] is True
    assert specs[("weather", "rows_per_day")] is False  # 2013-12-31 has no weather at all
    assert specs[("flight_features", "flight_id_unique")] is True
    assert specs[("flight_features", "label_rate_plausible")] is True


def test_per_partition_freshness_checks_and_their_sensor(graph):
    checked = {k.asset_key.to_user_string() for k in graph.asset_check_keys if k.name == "freshness_check"}
    assert checked == DAILY
    (sensor,) = [s for s in defs.sensors if "freshness" in s.name]
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_jobs_split_dimensions_from_the_daily_range(graph):
    def selected(job: str) -> set[str]:
        return {k.to_user_string() for k in defs.resolve_job_def(job).asset_layer.selected_asset_keys}

    assert selected("data_layers") == DAILY
    assert selected("dimensions") == set(LINEAGE) - DAILY


# --- resources per environment -------------------------------------------------------------------


def test_local_resources_use_the_data_dir_and_the_embedded_dataset(monkeypatch, tmp_path):
    monkeypatch.setenv("ML_ASSETS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ML_ASSETS_LANDING_DIR", raising=False)
    monkeypatch.delenv("ML_ASSETS_ENV", raising=False)

    resources = resources_for_env()

    assert isinstance(resources["storage"], DeltaStorage)
    assert Path(resources["storage"].base_uri) == tmp_path / "lake"
    assert isinstance(resources["source"], EmbeddedNycflights13)


def test_local_resources_read_a_landing_zone_when_one_is_set(monkeypatch, tmp_path):
    monkeypatch.setenv("ML_ASSETS_LANDING_DIR", str(tmp_path / "landing"))

    source = resources_for_env("local")["source"]

    assert isinstance(source, LandingZone) and source.root == str(tmp_path / "landing")


def test_k8s_resources_come_from_environment_variables(monkeypatch):
    monkeypatch.setenv("ML_ASSETS_LAKE_URI", "s3://lake")
    monkeypatch.setenv("ML_ASSETS_LANDING_DIR", "/mnt/landing")

    resources = resources_for_env("k8s")
    storage = dg.build_resources({"storage": resources["storage"], "source": resources["source"]})

    with storage as built:
        assert built.storage.base_uri == "s3://lake"
        assert built.source.root == "/mnt/landing"


def test_an_unknown_environment_is_refused(monkeypatch):
    monkeypatch.setenv("ML_ASSETS_ENV", "staging")
    with pytest.raises(ValueError, match="ML_ASSETS_ENV='staging'"):
        resources_for_env()


def test_partition_dates_are_configurable_from_the_environment(tmp_path):
    code = (
        "from ml_assets.partitions import daily_partitions as p; "
        "k = p.get_partition_keys(); print(k[0], k[-1], len(k))"
    )
    env = os.environ | {
        "ML_ASSETS_START_DATE": "2013-06-01",
        "ML_ASSETS_END_DATE": "2013-06-11",
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(date(2013, 6, 1)), str(date(2013, 6, 10)), "10"]
