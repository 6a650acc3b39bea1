"""The weekly model graph through Dagster against a real local MLflow store (SQLite + files):
training window, both learners, MLflow runs, registry, evaluation report, checks and promotion."""

from datetime import date, timedelta

import dagster as dg
import mlflow
import polars as pl
import pytest

from ml_assets.flights.feature_spec import FEATURES, FEATURES_TABLE
from ml_assets.models.registry import CHALLENGER, CHAMPION
from ml_assets_tests.training_runs import (
    ALL_ASSETS,
    NEXT_WEEK,
    WEEK,
    data_version_of,
    local_tracking,
    materialized,
    run_week,
    synthetic_lake,
)


class WeeklyRuns:
    """Week 1 through the whole graph (no champion yet), week 2 with a margin no model can beat,
    then week 1's LightGBM again on the same data and seed."""

    def __init__(self, folder):
        self.storage = synthetic_lake(folder)
        self.mlflow = local_tracking(folder)
        with dg.DagsterInstance.ephemeral() as instance:
            self.first = run_week(instance, WEEK, self.storage, self.mlflow)
            self.second = run_week(
                instance, NEXT_WEEK, self.storage, self.mlflow, champion_promotion={"margin": 1.0}
            )
            self.lgbm_again = run_week(instance, WEEK, self.storage, self.mlflow, ["lgbm_model"])
        self.registry = self.mlflow.registry()


@pytest.fixture(scope="module")
def weekly(tmp_path_factory) -> WeeklyRuns:
    folder = tmp_path_factory.mktemp("weekly")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_ASSETS_DATA_DIR", str(folder))  # the report files
        yield WeeklyRuns(folder)


def test_every_weekly_run_succeeds_and_materializes_its_assets(weekly):
    for result in (weekly.first, weekly.second, weekly.lgbm_again):
        assert result.success
    assert set(materialized(weekly.first)) == set(ALL_ASSETS)
    assert set(materialized(weekly.lgbm_again)) == {"lgbm_model"}


def test_training_set_pins_the_weeks_before_to_a_feature_table_version(weekly):
    training_set = materialized(weekly.first)["training_set"]

    assert training_set["window"] == "2013-03-04..2013-04-14"  # six whole weeks before Monday 04-15
    window = weekly.storage.scan(FEATURES_TABLE).filter(pl.col("date").is_between(date(2013, 3, 4), date(2013, 4, 14)))
    assert training_set["days"] == 42
    assert training_set["dagster/row_count"] == window.collect().height
    assert training_set["flight_features_version"] == 0
    # where it is and which Delta version: what the UI links to and what staleness compares
    assert training_set["dagster/uri"] == weekly.storage.table_uri("training/training_sets")
    assert [data_version_of(result, "training_set") for result in (weekly.first, weekly.second)] == [
        "training/training_sets@0", "training/training_sets@1"  # each week's write
    ]
    (manifest,) = weekly.storage.scan("training/training_sets").filter(pl.col("week") == WEEK).collect().to_dicts()
    assert manifest == {
        "table": FEATURES_TABLE, "table_version": 0, "first_day": date(2013, 3, 4), "last_day": date(2013, 4, 14),
        "rows": training_set["dagster/row_count"], "disruption_rate": training_set["disruption_rate"], "week": WEEK,
    }  # fmt: skip


def test_each_model_is_one_mlflow_run_with_params_metrics_data_versions_and_tags(weekly):
    learners = {"lgbm_model": ("lightgbm", "validation_roc_auc"), "torch_model": ("torch_tabular", "validation_log_loss")}
    for asset, (kind, metric) in learners.items():
        model = materialized(weekly.first)[asset]
        run = mlflow.get_run(model["mlflow_run_id"])

        assert run.info.run_name == f"{kind}-{WEEK}"  # what the MLflow UI lists
        assert run.data.tags["dagster_run_id"] == weekly.first.run_id
        assert run.data.tags["dagster_partition"] == WEEK
        assert run.data.tags["model_kind"] == kind
        assert run.data.tags["dagster_asset"] == asset
        assert run.info.artifact_uri.startswith(weekly.mlflow.artifact_location)  # the configured store
        assert run.data.params["data_version.features/flight_features"] == "0"
        assert run.data.params["training_days"] == "2013-03-04..2013-04-14"  # the 6 weeks before WEEK
        assert run.data.params["seed"] == "42"
        if asset == "lgbm_model":  # the boosting rounds kept by early stopping, within the configured bound
            assert 1 <= int(run.data.params["best_iteration"]) <= int(run.data.params["max_boost_rounds"]) == 200
            # the search ran the configured budget of trials
            trials = run.data.metrics["trials_completed"] + run.data.metrics["trials_pruned"]
            assert trials == int(run.data.params["n_trials"]) == 2
        else:  # the network trained as configured
            assert 1 <= run.data.metrics["epochs_run"] <= int(run.data.params["max_epochs"]) == 4
        assert run.data.metrics[metric] == pytest.approx(model[metric])
        assert mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/features.json")["features"] == FEATURES
        info = mlflow.models.get_model_info(model["model_uri"])
        assert info.signature.inputs.input_names() == FEATURES
        assert info.saved_input_example_info is not None


def test_each_model_is_registered_with_its_week_and_kind(weekly):
    week_one = weekly.registry.versions_tagged(dagster_partition=WEEK)
    week_two = weekly.registry.versions_tagged(dagster_partition=NEXT_WEEK)

    assert {tags["model_kind"] for tags in week_one.values()} == {"lightgbm", "torch_tabular"}
    assert len(week_one) == 3 and len(week_two) == 2  # week one's LightGBM trained twice
    assert weekly.registry.version_for(CHALLENGER) == max(week_one, key=int)  # the latest training
    for asset in ("lgbm_model", "torch_model"):  # what the UI shows and links, and the data version
        model = materialized(weekly.first)[asset]
        assert (model["registered_model"], model["mlflow_tracking_uri"]) == ("flight_disruption", weekly.mlflow.tracking_uri)
        assert data_version_of(weekly.first, asset) == f"flight_disruption@v{model['model_version']}"
        moves = [m for m in weekly.registry.alias_log() if m.to_version == model["model_version"] and m.alias == CHALLENGER]
        assert moves[0].moved_by == f"dagster asset {asset}"  # the first move to it: its training's


def test_the_ui_configs_default_to_the_model_layers_settings():
    """Each training default is written once, in the model layer; the asset's search budget and its
    share of the machine's cores aside."""
    from dataclasses import asdict

    from ml_assets.assets.training import LgbmTrainingConfig, TorchTrainingConfig, training_threads
    from ml_assets.models.lgbm import LgbmSearchConfig
    from ml_assets.models.torch_tabular import TorchTrainConfig

    lgbm, torch = asdict(LgbmSearchConfig()), asdict(TorchTrainConfig())
    threads = {"num_threads": training_threads()}
    assert LgbmTrainingConfig().model_dump() == {k: v for k, v in lgbm.items() if k != "device"} | {"n_trials": 20} | threads
    assert TorchTrainingConfig().model_dump() == {k: v for k, v in torch.items() if k != "device"} | {
        "hidden_sizes": list(torch["hidden_sizes"])
    } | threads


def test_training_threads_leave_a_core_to_the_daily_chain_on_a_small_machine(monkeypatch):
    from ml_assets.assets import training

    monkeypatch.setattr(training.os, "cpu_count", lambda: 2)
    assert training.training_threads() == 1
    monkeypatch.setattr(training.os, "cpu_count", lambda: 16)
    assert training.training_threads() == training.POD_TRAINING_THREADS == 2
    monkeypatch.setenv("ML_ASSETS_TRAINING_THREADS", "3")
    assert training.training_threads() == 3
    monkeypatch.setenv("ML_ASSETS_TRAINING_THREADS", "0")
    with pytest.raises(ValueError, match="ML_ASSETS_TRAINING_THREADS='0'"):
        training.training_threads()


def test_the_evaluation_scores_candidates_champion_and_baselines_on_the_same_week(weekly):
    evaluation = materialized(weekly.second)["model_evaluation"]
    # the table where the README says evaluations are kept
    rows = weekly.storage.scan("evaluation/model_evaluations").filter(pl.col("week") == NEXT_WEEK).collect()

    assert sorted(rows["role"]) == ["baseline", "baseline", "candidate", "challenger", "champion"]
    assert set(rows.filter(pl.col("role") == "baseline")["model"]) == {"baseline_rate", "logistic"}
    challenger = rows.filter(pl.col("role") == "challenger").row(0, named=True)
    candidates = rows.filter(pl.col("role").is_in(["challenger", "candidate"]))
    week_versions = weekly.registry.versions_tagged(dagster_partition=NEXT_WEEK)
    assert sorted(candidates["model"]) == sorted(f"{tags['model_kind']} v{v}" for v, tags in week_versions.items())
    assert challenger["roc_auc"] == max(candidates["roc_auc"])
    assert challenger["roc_auc"] > rows.filter(pl.col("model") == "baseline_rate")["roc_auc"].item()
    week = pl.col("date").is_between(date.fromisoformat(NEXT_WEEK), date.fromisoformat(NEXT_WEEK) + timedelta(days=6))
    assert evaluation["evaluation_rows"] == weekly.storage.scan(FEATURES_TABLE).filter(week).collect().height

    assert set(rows["features_version"]) == {evaluation["evaluated_on"][FEATURES_TABLE]}
    # the figures the UI shows for the partition
    assert (evaluation["challenger_roc_auc"], evaluation["worst_slice_gap"]) == (
        challenger["roc_auc"], challenger["worst_slice_gap"]
    )
    assert materialized(weekly.first)["model_evaluation"]["champion_version"] == "none"
    assert [data_version_of(result, "model_evaluation") for result in (weekly.first, weekly.second)] == [
        "evaluation/model_evaluations@0", "evaluation/model_evaluations@1"  # each week's write
    ]

    markdown = evaluation["report"]
    champion = evaluation["champion_version"]
    assert f"Challenger: {challenger['model']}; champion: v{champion}; quality checks passed." in markdown
    assert "; champion: none yet; quality checks passed." in materialized(weekly.first)["model_evaluation"]["report"]
    for name in ("baseline_rate", "logistic", "champion v", "worst_roc_auc", "report.html"):
        assert name in markdown, name
    for link in ("report_html", "calibration_plot"):
        assert evaluation[link].startswith("file://")
    assert evaluation["report_html"].endswith(f"/reports/model_evaluation/{NEXT_WEEK}/report.html")
    # the data versions behind the comparison: the baselines' training window and the week scored
    assert list(evaluation["baselines_trained_on"]) == list(evaluation["evaluated_on"]) == [FEATURES_TABLE]
    run_id = weekly.registry.client.get_model_version(
        weekly.registry.model_name, evaluation["challenger_version"]
    ).run_id
    logged = {a.path for a in weekly.registry.client.list_artifacts(run_id, f"evaluation/{NEXT_WEEK}")}
    assert {f"evaluation/{NEXT_WEEK}/report.html", f"evaluation/{NEXT_WEEK}/calibration.png"} <= logged


def test_the_evaluation_points_the_challenger_alias_at_its_best_candidate(weekly):
    """Each week's run ends with `challenger` on the candidate its evaluation chose, and no move
    in the alias log re-points it at the version it already had."""
    moves = [m for m in weekly.registry.alias_log() if m.alias == CHALLENGER]
    for result in (weekly.first, weekly.second):
        chosen = materialized(result)["model_evaluation"]["challenger_version"]
        in_run = [m for m in moves if m.dagster_run_id == result.run_id]
        assert in_run[-1].to_version == chosen
        assert all(m.from_version != m.to_version for m in in_run)


def test_quality_checks_ran_as_blocking_checks_and_passed(weekly):
    evaluations = weekly.first.get_asset_check_evaluations()

    assert {e.check_name: e.passed for e in evaluations} == {
        "invariance_to_identifiers": True,
        "lower_visibility_raises_risk": True,
        "recent_origin_delays_raise_risk": True,
        "minimum_roc_auc": True,
    }
    (auc,) = [e.metadata for e in evaluations if e.check_name == "minimum_roc_auc"]  # why it passed
    challenger_auc = materialized(weekly.first)["model_evaluation"]["challenger_roc_auc"]
    assert (auc["roc_auc"].value, auc["min_roc_auc"].value) == (challenger_auc, 0.65)  # the documented default


def test_the_first_challenger_becomes_champion_and_a_margin_it_cannot_beat_holds_it(weekly):
    first = materialized(weekly.first)
    second = materialized(weekly.second)["champion_promotion"]
    promoted = first["model_evaluation"]["challenger_version"]

    assert first["champion_promotion"]["promoted"] is True
    assert first["champion_promotion"]["champion_version"] == promoted
    assert second["promoted"] is False and "does not beat" in second["decision"]
    assert weekly.registry.version_for(CHAMPION) == promoted
    champion_moves = [m for m in weekly.registry.alias_log() if m.alias == CHAMPION]
    assert [(m.action, m.from_version, m.to_version) for m in champion_moves] == [("promote", None, promoted)]
    assert champion_moves[0].dagster_run_id == weekly.first.run_id
    assert champion_moves[0].moved_by == "dagster asset champion_promotion"


def test_same_data_and_seed_give_the_same_lightgbm_metrics(weekly):
    first = materialized(weekly.first)["lgbm_model"]
    again = materialized(weekly.lgbm_again)["lgbm_model"]

    assert again["model_version"] != first["model_version"]
    assert again["validation_roc_auc"] == first["validation_roc_auc"]
    first_run, again_run = (mlflow.get_run(m["mlflow_run_id"]).data for m in (first, again))
    assert first_run.metrics == again_run.metrics
    assert first_run.params == again_run.params
