"""Registry logic against a real local MLflow store (SQLite + file artifacts)."""

from pathlib import Path
from urllib.parse import urlparse

import pytest

from ml_assets.models.lgbm import LgbmSearchConfig, train_lgbm
from ml_assets.models.registry import (
    CHALLENGER,
    CHAMPION,
    CorruptModelArtifactError,
    ModelRegistry,
    NoPreviousChampionError,
    PromotionDecision,
    decide_promotion,
)
from ml_assets.models.tracking import MlflowUnavailableError, log_training_run

MODEL_NAME = "flight_disruption"


@pytest.fixture(scope="module")
def tiny_model(features):
    return train_lgbm(features.head(1200), LgbmSearchConfig(n_trials=2, max_boost_rounds=40))


@pytest.fixture()
def registry(tracking_uri) -> ModelRegistry:
    return ModelRegistry(tracking_uri, MODEL_NAME)


def register(registry, model, features, artifact_location, run_id="dagster-run") -> str:
    logged = log_training_run(
        model,
        tracking_uri=registry.tracking_uri,
        experiment_name="flight_disruption",
        sample_frame=features.head(5),
        params={"n_trials": 2},
        metrics=model.validation_metrics,
        data_versions={"flight_features": 7},
        tags={"dagster_run_id": run_id},
        artifact_location=artifact_location,
    )
    return registry.register_version(logged.model_uri, logged.run_id)


def test_decide_promotion_needs_quality_and_the_margin():
    assert decide_promotion({"roc_auc": 0.74}, None, quality_passed=True, margin=0.005).promote
    assert decide_promotion({"roc_auc": 0.76}, {"roc_auc": 0.75}, True, margin=0.005).promote
    held = decide_promotion({"roc_auc": 0.753}, {"roc_auc": 0.75}, True, margin=0.005)
    assert not held.promote and "does not beat" in held.reason
    assert held.reason == "challenger roc_auc 0.7530 does not beat champion 0.7500 + margin 0.005"
    first = decide_promotion({"roc_auc": 0.74}, None, quality_passed=True, margin=0.005)
    assert first == PromotionDecision(True, "no champion yet; challenger roc_auc 0.7400")
    at_margin = decide_promotion({"roc_auc": 0.75}, {"roc_auc": 0.5}, True, margin=0.25)  # exact in binary
    assert at_margin == PromotionDecision(True, "challenger roc_auc 0.7500 beats champion 0.5000 + margin 0.25")
    failed = decide_promotion({"roc_auc": 0.9}, {"roc_auc": 0.75}, False, margin=0.005)
    assert failed == PromotionDecision(False, "challenger failed the model quality checks")
    undefined = decide_promotion({"roc_auc": float("nan")}, None, True, margin=0.0)
    assert undefined == PromotionDecision(False, "challenger roc_auc is undefined on the evaluation data")


def test_promote_rollback_and_the_alias_log(registry, tiny_model, features, artifact_location):
    versions = [register(registry, tiny_model, features, artifact_location) for _ in range(3)]
    assert versions == ["1", "2", "3"]

    registry.set_challenger("1", "trained", "run-a")
    registry.promote("1", "first champion", "run-a")
    registry.set_challenger("2", "trained", "run-b", moved_by="lgbm_model")
    registry.promote("2", "beats v1", "run-b")
    registry.promote("3", "beats v2", "run-c")
    assert registry.version_for(CHAMPION) == "3"
    assert registry.champion_history() == ["1", "2", "3"]
    # the alias names are the contract with everything outside (models:/<name>@champion URIs)
    assert str(registry.client.get_model_version_by_alias(MODEL_NAME, "champion").version) == "3"
    assert str(registry.client.get_model_version_by_alias(MODEL_NAME, "challenger").version) == "2"

    back = registry.rollback("v3 misbehaves", "run-d")
    assert (back.from_version, back.to_version, back.action) == ("3", "2", "rollback")
    assert registry.version_for(CHAMPION) == "2"
    registry.rollback("v2 too", "run-e")
    assert registry.version_for(CHAMPION) == "1"
    with pytest.raises(NoPreviousChampionError):
        registry.rollback("nothing left", "run-f")
    assert registry.version_for(CHAMPION) == "1"

    log = registry.alias_log()
    assert [(m.alias, m.action, m.from_version, m.to_version, m.dagster_run_id) for m in log] == [
        (CHALLENGER, "set", None, "1", "run-a"),
        (CHAMPION, "promote", None, "1", "run-a"),
        (CHALLENGER, "set", "1", "2", "run-b"),
        (CHAMPION, "promote", "1", "2", "run-b"),
        (CHAMPION, "promote", "2", "3", "run-c"),
        (CHAMPION, "rollback", "3", "2", "run-d"),
        (CHAMPION, "rollback", "2", "1", "run-e"),
    ]
    assert log[5].reason == "v3 misbehaves" and log[5].moved_at.endswith("+00:00")
    assert [m.moved_by for m in log[:3]] == [None, None, "lgbm_model"]
    # the log is durable: a fresh client on the same store reads the same history
    assert ModelRegistry(registry.tracking_uri, MODEL_NAME).alias_log() == log

    champion = registry.load(CHAMPION)
    assert champion.predict(champion.input_example).shape == (5,)


def test_promotion_refuses_a_corrupt_artifact(registry, tiny_model, features, artifact_location):
    good = register(registry, tiny_model, features, artifact_location)
    registry.promote(good, "first champion")
    corrupt = register(registry, tiny_model, features, artifact_location)
    artifact = Path(urlparse(registry.client.get_model_version_download_uri(MODEL_NAME, corrupt)).path)
    (artifact / "artifacts" / "model_folder" / "booster.txt").write_text("not a booster")

    with pytest.raises(CorruptModelArtifactError, match=f"version {corrupt}"):
        registry.promote(corrupt, "would beat the champion")
    assert registry.version_for(CHAMPION) == good
    assert [m.to_version for m in registry.alias_log()] == [good]


def test_promoting_the_current_champion_again_is_refused(registry, tiny_model, features, artifact_location):
    version = register(registry, tiny_model, features, artifact_location)
    registry.promote(version, "first champion")
    with pytest.raises(ValueError, match="already the champion"):
        registry.promote(version, "again")
    assert len(registry.alias_log()) == 1


def test_unreachable_mlflow_fails_clearly_and_moves_nothing(
    monkeypatch, registry, tiny_model, features, artifact_location
):
    version = register(registry, tiny_model, features, artifact_location)
    registry.promote(version, "first champion")

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    unreachable = ModelRegistry("http://127.0.0.1:9", MODEL_NAME)
    with pytest.raises(MlflowUnavailableError, match="127.0.0.1:9 is unreachable"):
        unreachable.promote(version, "should not happen")
    with pytest.raises(MlflowUnavailableError):
        register(unreachable, tiny_model, features, artifact_location)
    assert registry.version_for(CHAMPION) == version
    assert len(registry.alias_log()) == 1


class FixedScores:
    """An MLflow python model that loads fine and answers `scores` (repeated) to any input."""

    def __init__(self, scores: list[float]):
        self.scores = scores

    def predict(self, context, model_input, params=None):
        import numpy as np

        return np.resize(np.asarray(self.scores, dtype=float), len(model_input))


def register_fixed_scores(registry, scores, features, artifact_location) -> str:
    import mlflow

    from ml_assets.models.dataset import model_input_frame
    from ml_assets.models.tracking import experiment_id

    python_model = type("FixedScoresModel", (FixedScores, mlflow.pyfunc.PythonModel), {})(scores)
    with mlflow.start_run(experiment_id=experiment_id(registry.client, MODEL_NAME, artifact_location)) as run:
        info = mlflow.pyfunc.log_model(
            name="model", python_model=python_model, input_example=model_input_frame(features.head(4)),
            pip_requirements=[],
        )  # fmt: skip
    return registry.register_version(info.model_uri, run.info.run_id)


def test_an_artifact_that_loads_but_scores_outside_0_1_is_refused(registry, features, artifact_location):
    bounds = register_fixed_scores(registry, [0.0, 1.0], features, artifact_location)
    registry.promote(bounds, "scores at both ends of [0, 1] are probabilities")

    for scores in ([0.5, 1.0001], [-0.0001, 0.5]):
        version = register_fixed_scores(registry, scores, features, artifact_location)
        with pytest.raises(CorruptModelArtifactError, match="no valid probabilities"):
            registry.promote(version, "loads, but its scores are not probabilities")
    assert registry.version_for(CHAMPION) == bounds
    assert [m.to_version for m in registry.alias_log()] == [bounds]


@pytest.mark.parametrize("had_champion", [True, False])
def test_a_move_whose_log_entry_fails_restores_the_alias(
    monkeypatch, registry, tiny_model, features, artifact_location, had_champion
):
    first, second = (register(registry, tiny_model, features, artifact_location) for _ in range(2))
    if had_champion:
        registry.promote(first, "first champion")
    log = registry.alias_log()

    def tag_write_fails(*args, **kwargs):
        raise RuntimeError("store went away after the alias moved")

    monkeypatch.setattr(registry.client, "set_registered_model_tag", tag_write_fails)
    with pytest.raises(MlflowUnavailableError, match="alias restored"):
        registry.promote(second, "its log entry cannot be written")

    monkeypatch.undo()
    assert registry.version_for(CHAMPION) == (first if had_champion else None)
    assert registry.alias_log() == log


def test_the_alias_log_is_stored_as_timestamped_tags_and_reads_entries_of_earlier_versions(
    registry, tiny_model, features, artifact_location
):
    """The log's stored form is a contract with every store that holds one: `alias_move.<ns>` tags
    of JSON; an entry written before `moved_by` existed still reads (as None)."""
    import json
    import re

    version = register(registry, tiny_model, features, artifact_location)
    registry.promote(version, "first champion", "run-a", moved_by="ana")
    (key, value), = ((k, v) for k, v in registry.client.get_registered_model(MODEL_NAME).tags.items())
    assert re.fullmatch(r"alias_move\.\d{20}", key)
    assert json.loads(value) | {"moved_at": None} == {
        "alias": "champion", "action": "promote", "from_version": None, "to_version": version,
        "moved_at": None, "reason": "first champion", "dagster_run_id": "run-a", "moved_by": "ana",
    }  # fmt: skip

    older = {"alias": "champion", "action": "rollback", "from_version": version, "to_version": version,
             "moved_at": "2013-01-01T00:00:00+00:00", "reason": "written before moved_by", "dagster_run_id": None}  # fmt: skip
    registry.client.set_registered_model_tag(MODEL_NAME, f"alias_move.{'9' * 20}", json.dumps(older))
    assert registry.alias_log()[-1].moved_by is None and registry.alias_log()[-1].reason == "written before moved_by"


def test_a_logged_model_uri_carries_its_model_id_to_the_registry():
    from ml_assets.models.registry import _logged_model_id

    assert _logged_model_id("models:/m-0123abcd") == "m-0123abcd"
    assert _logged_model_id("models:/flight_disruption/3") is None
    assert _logged_model_id("runs:/abc/model") is None


def test_a_version_links_its_training_run_and_logged_model(registry, tiny_model, features, artifact_location):
    """The drift reference finds a champion's training window through its version's run."""
    logged = log_training_run(
        tiny_model, tracking_uri=registry.tracking_uri, experiment_name=MODEL_NAME, sample_frame=features.head(5),
        params={}, metrics={}, data_versions={}, tags={}, artifact_location=artifact_location,
    )  # fmt: skip
    version = registry.client.get_model_version(MODEL_NAME, registry.register_version(logged.model_uri, logged.run_id))
    assert version.run_id == logged.run_id


def test_versions_tagged_finds_exact_and_wider_tag_sets_of_this_model_only(registry, tiny_model, features, artifact_location):
    other = ModelRegistry(registry.tracking_uri, "another_model")
    for target in (registry, other, other):  # the other model has a version 2 this one lacks
        logged = log_training_run(
            tiny_model, tracking_uri=registry.tracking_uri, experiment_name=MODEL_NAME, sample_frame=features.head(5),
            params={}, metrics={}, data_versions={}, tags={}, artifact_location=artifact_location,
        )  # fmt: skip
        target.register_version(logged.model_uri, logged.run_id, tags={"dagster_partition": "2013-03-04", "model_kind": "lgbm"})

    assert registry.versions_tagged(dagster_partition="2013-03-04", model_kind="lgbm") == {
        "1": {"dagster_partition": "2013-03-04", "model_kind": "lgbm"}
    }
    assert list(registry.versions_tagged(model_kind="lgbm")) == ["1"]
    assert registry.versions_tagged(model_kind="torch") == {}


def test_versions_tagged_lists_versions_in_numeric_order(registry):
    """Version 10 comes after version 9 (the evaluation takes the last one of each kind)."""
    registry.client.create_registered_model(MODEL_NAME)
    for _ in range(10):
        registry.client.create_model_version(MODEL_NAME, "file:///nowhere", tags={"dagster_partition": "w"})
    assert list(registry.versions_tagged(dagster_partition="w")) == [str(n) for n in range(1, 11)]


def test_a_missing_alias_reads_as_none_and_any_other_registry_error_is_raised(monkeypatch, registry, tiny_model, features, artifact_location):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, RESOURCE_DOES_NOT_EXIST

    version = register(registry, tiny_model, features, artifact_location)
    assert registry.version_for(CHAMPION) is None
    assert registry.load(version).predict(registry.load(version).input_example).shape == (5,)  # by number

    def raises(error):
        def get_model_version_by_alias(*args, **kwargs):
            raise error

        monkeypatch.setattr(registry.client, "get_model_version_by_alias", get_model_version_by_alias)

    raises(MlflowException("alias 'champion' is unknown", error_code=RESOURCE_DOES_NOT_EXIST))
    assert registry.version_for(CHAMPION) is None
    raises(MlflowException("the database is read-only", error_code=INTERNAL_ERROR))
    with pytest.raises(MlflowUnavailableError, match="cannot read alias champion"):
        registry.version_for(CHAMPION)


def test_a_long_reason_is_kept_to_its_first_2000_characters(registry, tiny_model, features, artifact_location):
    version = register(registry, tiny_model, features, artifact_location)
    registry.promote(version, "p" * 3000)
    registry.record(CHALLENGER, "rollout_abort", version, version, "r" * 3000)
    assert [m.reason for m in registry.alias_log()] == ["p" * 2000, "r" * 2000]


def test_record_appends_a_whole_entry_without_moving_an_alias(registry, tiny_model, features, artifact_location):
    version = register(registry, tiny_model, features, artifact_location)
    registry.promote(version, "first champion")

    entry = registry.record(CHALLENGER, "rollout_abort", "7", 5, "guardrail breached", moved_by="guard", dagster_run_id="run-x")

    (stored,) = registry.alias_log()[1:]
    assert stored == entry
    assert (entry.alias, entry.action, entry.from_version, entry.to_version, entry.reason, entry.dagster_run_id,
            entry.moved_by) == (CHALLENGER, "rollout_abort", "7", "5", "guardrail breached", "run-x", "guard")  # fmt: skip
    assert entry.moved_at.endswith("+00:00")
    assert registry.version_for(CHAMPION) == version and registry.version_for(CHALLENGER) is None
