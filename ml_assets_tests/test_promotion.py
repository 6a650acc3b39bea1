"""The promotion gate and its bad inputs: a too-small window, MLflow unreachable, a failed quality
check, a corrupt artifact; and the `ml-assets promote` / `rollback` commands."""

from datetime import date

import dagster as dg
import polars as pl
import pytest

from ml_assets.assets.evaluation import EVALUATIONS
from ml_assets.assets.weekly import read_week_rows
from ml_assets.cli import main
from ml_assets.definitions import model_assets
from ml_assets.flights.feature_spec import FEATURES_TABLE
from ml_assets.models.lgbm import LgbmSearchConfig, train_lgbm
from ml_assets.models.registry import CHALLENGER, CHAMPION
from ml_assets.models.tracking import log_training_run
from ml_assets.resources.mlflow import MlflowTracking, local_mlflow
from ml_assets_tests.models.conftest import synthetic_features
from ml_assets_tests.training_runs import (
    SMALL_CONFIG,
    NEXT_WEEK,
    TRAINING_ASSETS,
    WEEK,
    corrupt_version,
    data_version_of,
    failure_messages,
    local_tracking,
    materialized,
    run_week,
    synthetic_lake,
)


@pytest.fixture
def lake_and_tracking(tmp_path, monkeypatch):
    monkeypatch.setenv("ML_ASSETS_DATA_DIR", str(tmp_path))
    return synthetic_lake(tmp_path), local_tracking(tmp_path)


@pytest.mark.parametrize(
    ("week", "reason"),
    [
        ("2013-01-07", "training window 2012-11-26..2013-01-06 of week 2013-01-07: training window has 0 rows"),
        ("2013-03-11", "training window 2013-01-28..2013-03-10 of week 2013-03-11: training window has"),
    ],
)
def test_an_empty_or_too_small_window_fails_with_the_reason_and_registers_nothing(
    lake_and_tracking, dagster_instance, week, reason
):
    storage, tracking = lake_and_tracking

    result = run_week(dagster_instance, week, storage, tracking)

    assert not result.success
    failures = failure_messages(result)
    assert set(failures) == {"training_set"}
    min_rows = SMALL_CONFIG["training_set"]["min_rows"]
    assert reason in failures["training_set"] and f"fewer than the {min_rows} required" in failures["training_set"]
    assert materialized(result) == {}
    assert tracking.registry().versions_tagged() == {}


def test_the_window_defaults_to_13_weeks_needs_a_week_and_enough_of_each_class(lake_and_tracking, dagster_instance):
    storage, tracking = lake_and_tracking
    untrained = run_week(dagster_instance, NEXT_WEEK, storage, tracking, ["lgbm_model"])
    assert "materialize training_set for 2013-04-22 first" in failure_messages(untrained)["lgbm_model"]

    default = dg.materialize(  # no window_weeks in the config
        model_assets, selection=["training_set"], partition_key=NEXT_WEEK, instance=dagster_instance,
        resources={"storage": storage, "mlflow": tracking},
        run_config={"ops": {"training_set": {"config": {"min_rows": 100, "min_positives": 10}}}},
    )  # fmt: skip
    one_class = run_week(dagster_instance, NEXT_WEEK, storage, tracking, ["training_set"],
                         training_set={"min_rows": 100, "min_positives": 100_000})  # fmt: skip

    assert materialized(default)["training_set"]["window"] == "2013-01-21..2013-04-21"  # the README's 13 weeks
    assert "disrupted and" in failure_messages(one_class)["training_set"]
    assert "at least 100000 of each are required" in failure_messages(one_class)["training_set"]
    no_weeks = run_week(dagster_instance, NEXT_WEEK, storage, tracking, ["training_set"], training_set={"window_weeks": 0})
    assert "window_weeks\n  Input should be greater than or equal to 1" in failure_messages(no_weeks)["training_set"]


def test_a_model_trains_on_the_pinned_window_after_the_features_change(lake_and_tracking, dagster_instance):
    storage, tracking = lake_and_tracking
    pinned = materialized(run_week(dagster_instance, WEEK, storage, tracking, ["training_set"]))["training_set"]
    day = date(2013, 4, 1)  # inside the window, rewritten after it was pinned
    storage.write_days(FEATURES_TABLE, storage.scan(FEATURES_TABLE, day, day).collect().head(10), day, day)

    trained = materialized(run_week(dagster_instance, WEEK, storage, tracking, ["lgbm_model"]))["lgbm_model"]

    assert trained["dagster/row_count"] == pinned["dagster/row_count"]
    assert trained["trained_on"] == {FEATURES_TABLE: pinned["flight_features_version"]}


def test_unreachable_mlflow_fails_clearly_before_training_and_moves_no_alias(
    lake_and_tracking, dagster_instance, monkeypatch
):
    storage, tracking = lake_and_tracking
    assert run_week(dagster_instance, WEEK, storage, tracking).success
    champion, log = tracking.registry().version_for(CHAMPION), tracking.registry().alias_log()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")

    result = run_week(dagster_instance, WEEK, storage, MlflowTracking(tracking_uri="http://127.0.0.1:9"))

    failures = failure_messages(result)
    assert set(failures) == {"lgbm_model", "torch_model"}
    assert all("MLflow at http://127.0.0.1:9 is unreachable" in message for message in failures.values())
    assert set(materialized(result)) == {"training_set"}
    assert tracking.registry().version_for(CHAMPION) == champion
    assert tracking.registry().alias_log() == log


def test_a_failed_quality_check_blocks_promotion_and_a_corrupt_artifact_is_refused(
    lake_and_tracking, dagster_instance
):
    storage, tracking = lake_and_tracking
    registry = tracking.registry()

    blocked = run_week(dagster_instance, WEEK, storage, tracking, model_evaluation={"min_roc_auc": 0.99})

    checks = {e.check_name: e.passed for e in blocked.get_asset_check_evaluations()}
    assert checks["minimum_roc_auc"] is False
    assert "quality checks FAILED." in materialized(blocked)["model_evaluation"]["report"]
    assert "champion_promotion" not in materialized(blocked)  # the blocking check stopped it
    assert registry.version_for(CHAMPION) is None
    # run on its own, past the blocking check, the gate still reads the failed checks
    alone = materialized(run_week(dagster_instance, WEEK, storage, tracking, ["champion_promotion"]))
    assert alone["champion_promotion"] | {"decision": None} == {
        "promoted": False, "decision": None, "challenger_version": registry.version_for(CHALLENGER), "champion_version": "none",
    }  # fmt: skip
    assert registry.version_for(CHAMPION) is None

    # the challenger passes on a fair bar, but its artifact is damaged before the gate runs
    assert run_week(dagster_instance, WEEK, storage, tracking, ["model_evaluation"]).success
    corrupt_version(tracking, registry.version_for(CHALLENGER))
    refused = run_week(dagster_instance, WEEK, storage, tracking, ["champion_promotion"])

    assert "cannot be loaded" in failure_messages(refused)["champion_promotion"]
    assert registry.version_for(CHAMPION) is None
    assert all(move.alias == CHALLENGER for move in registry.alias_log())


def test_the_evaluation_needs_min_rows_rows_of_the_week(lake_and_tracking, dagster_instance):
    storage, tracking = lake_and_tracking
    assert run_week(dagster_instance, WEEK, storage, tracking, TRAINING_ASSETS).success
    rows = storage.scan("features/flight_features", date(2013, 4, 15), date(2013, 4, 21)).collect().height

    exactly, short = (
        run_week(dagster_instance, WEEK, storage, tracking, ["model_evaluation"], model_evaluation={"min_rows": n})
        for n in (rows, rows + 1)
    )

    assert materialized(exactly)["model_evaluation"]["evaluation_rows"] == rows
    assert f"has {rows} evaluation rows, fewer than {rows + 1}" in failure_messages(short)["model_evaluation"]


def test_promotion_refuses_a_missing_or_stale_evaluation(lake_and_tracking, dagster_instance):
    storage, tracking = lake_and_tracking
    assert run_week(dagster_instance, WEEK, storage, tracking, TRAINING_ASSETS).success
    unevaluated = run_week(dagster_instance, WEEK, storage, tracking, ["champion_promotion"])
    assert "materialize model_evaluation for 2013-04-15 first" in failure_messages(unevaluated)["champion_promotion"]
    assert run_week(dagster_instance, WEEK, storage, tracking, ["model_evaluation"]).success
    registry = tracking.registry()
    other = next(v for v in registry.versions_tagged() if v != registry.version_for(CHALLENGER))
    registry.promote(other, "promoted by hand after the evaluation")

    stale = run_week(dagster_instance, WEEK, storage, tracking, ["champion_promotion"])

    assert "re-run model_evaluation" in failure_messages(stale)["champion_promotion"]
    assert registry.version_for(CHAMPION) == other


def test_the_gate_promotes_a_challenger_beating_the_champion_by_more_than_the_margin_only(
    lake_and_tracking, dagster_instance
):
    """The weaker of the week's two models is made champion by hand; the evaluation scores both
    on the same days, and the gate moves the champion only when the challenger's gain exceeds
    the margin."""
    storage, tracking = lake_and_tracking
    assert run_week(dagster_instance, WEEK, storage, tracking, [*TRAINING_ASSETS, "model_evaluation"]).success
    registry = tracking.registry()
    challenger = registry.version_for(CHALLENGER)
    weaker = next(v for v in registry.versions_tagged(dagster_partition=WEEK) if v != challenger)
    registry.promote(weaker, "the weaker model as champion")
    registry.set_challenger(weaker, "the weaker model as challenger too")

    evaluated = run_week(dagster_instance, WEEK, storage, tracking, ["model_evaluation"])
    assert materialized(evaluated)["model_evaluation"]["champion_version"] == weaker
    move = registry.alias_log()[-1]  # the evaluation points the challenger back at its best candidate
    assert (move.alias, move.from_version, move.to_version, move.dagster_run_id, move.moved_by) == (
        CHALLENGER, weaker, challenger, evaluated.run_id, "dagster asset model_evaluation"
    )
    assert move.reason == f"best candidate of week {WEEK} on 2013-04-15..2013-04-21"
    rows = read_week_rows(storage, EVALUATIONS, WEEK, "model_evaluation")
    roc_auc = dict(rows.filter(pl.col("role").is_in(["challenger", "champion"])).select("role", "roc_auc").iter_rows())
    gain = roc_auc["challenger"] - roc_auc["champion"]
    assert gain > 0.002, roc_auc

    held = run_week(dagster_instance, WEEK, storage, tracking, ["champion_promotion"],
                    champion_promotion={"margin": gain + 0.001})  # fmt: skip
    assert materialized(held)["champion_promotion"]["promoted"] is False
    assert registry.version_for(CHAMPION) == weaker

    promoted = run_week(dagster_instance, WEEK, storage, tracking, ["champion_promotion"],
                        champion_promotion={"margin": gain - 0.001})  # fmt: skip
    assert materialized(promoted)["champion_promotion"] | {"decision": None} == {
        "promoted": True, "decision": None, "challenger_version": challenger, "champion_version": challenger,
    }  # fmt: skip
    assert registry.version_for(CHAMPION) == challenger
    assert registry.alias_log()[-1].moved_by == "dagster asset champion_promotion"
    # the gate's data version names the champion it leaves: a held gate and a promotion differ
    assert [data_version_of(result, "champion_promotion") for result in (held, promoted)] == [
        f"flight_disruption@champion=v{weaker}", f"flight_disruption@champion=v{challenger}"
    ]


# --- ml-assets promote / rollback ----------------------------------------------------------------


@pytest.fixture
def local_registry(tmp_path, monkeypatch):
    """The local environment's registry (under ML_ASSETS_DATA_DIR) with three LightGBM versions."""
    monkeypatch.setenv("ML_ASSETS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ML_ASSETS_ENV", raising=False)
    tracking = local_mlflow()
    registry = tracking.registry()
    features = synthetic_features(rows=800, days=20)
    model = train_lgbm(features, LgbmSearchConfig(n_trials=1, max_boost_rounds=20))
    for _ in range(3):
        logged = log_training_run(
            model, tracking_uri=registry.tracking_uri, experiment_name=tracking.experiment_name,
            sample_frame=features.head(5), params={}, metrics={}, data_versions={"features/flight_features": 0},
            tags={}, artifact_location=tracking.artifact_location,
        )  # fmt: skip
        registry.register_version(logged.model_uri, logged.run_id)
    registry.set_challenger("2", "trained")
    return registry


def test_promote_and_rollback_commands_move_the_champion_and_log_who_and_why(local_registry, capsys):
    assert main(["promote", "--version", "1", "--reason", "first champion"]) == 0
    assert main(["promote", "--reason", "the challenger is better"]) == 0  # defaults to the challenger
    assert local_registry.version_for(CHAMPION) == "2"
    assert "champion v1 -> v2 (the challenger is better)" in capsys.readouterr().out

    assert main(["rollback", "--reason", "v2 misbehaves in production"]) == 0
    assert local_registry.version_for(CHAMPION) == "1"
    rollback = local_registry.alias_log()[-1]
    assert (rollback.action, rollback.from_version, rollback.to_version) == ("rollback", "2", "1")
    assert rollback.reason == "v2 misbehaves in production"
    assert rollback.moved_by.endswith("(ml-assets rollback)")


def test_the_commands_refuse_what_they_cannot_do_and_change_nothing(local_registry, capsys):
    assert main(["rollback", "--reason", "no champion yet"]) == 1
    assert "refused" in capsys.readouterr().err
    corrupt_version(local_mlflow(), "3")
    assert main(["promote", "--version", "3", "--reason", "corrupt"]) == 1
    assert "version 3 cannot be loaded" in capsys.readouterr().err
    assert main(["promote", "--version", "42", "--reason", "missing"]) == 1
    assert local_registry.version_for(CHAMPION) is None
    assert [m.alias for m in local_registry.alias_log()] == [CHALLENGER]
