"""Rollouts recorded in a real (local) MLflow registry: the rollout tag and the alias log."""

import json
import shutil
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest

from ml_assets.models.registry import CHALLENGER, CHAMPION, CorruptModelArtifactError
from ml_assets.models.rollouts import (
    CANARY,
    NONE,
    SHADOW,
    Rollout,
    RolloutError,
    abort_rollout,
    current_rollout,
    promote_rollout,
    rollout_from_tags,
    start_rollout,
)


def test_no_record_means_no_rollout(registry):
    assert current_rollout(registry) == Rollout() and not Rollout().active
    assert asdict(Rollout()) == {  # what `ml-assets rollout status` shows: nothing, not empty strings
        "mode": "none", "percent": 0.0, "challenger_version": None, "champion_version": None, "started_at": None,
        "started_by": None, "reason": None, "ended_at": None, "ended_by": None, "end": None,
    }  # fmt: skip
    assert Rollout().mode == "none"  # the modes' spelling is stored in the tag and typed on the CLI
    assert rollout_from_tags({"alias_move.1": "{}"}) == Rollout(mode=NONE)


def test_a_canary_is_one_tag_and_an_alias_log_entry(registry):
    rollout = start_rollout(registry, "canary", 10, "first look at v2", by="ana")

    tags = registry.client.get_registered_model(registry.model_name).tags
    assert json.loads(tags["rollout"])["mode"] == "canary"
    assert current_rollout(registry) == rollout
    assert (rollout.mode, rollout.percent, rollout.challenger_version, rollout.champion_version) == (CANARY, 10.0, "2", "1")
    assert rollout.started_by == "ana" and rollout.reason == "first look at v2" and rollout.active
    assert datetime.fromisoformat(rollout.started_at).utcoffset() == timedelta(0)  # UTC, with its offset
    last = registry.alias_log()[-1]
    assert (last.alias, last.action, last.from_version, last.to_version, last.moved_by) == (CHALLENGER, "rollout_canary", "1", "2", "ana")
    assert last.reason == "10 %: first look at v2"


def test_the_share_of_a_rollout_can_change_but_not_its_challenger(registry):
    start_rollout(registry, "shadow", 100, "shadow first", by="ana")
    wider = start_rollout(registry, CANARY, 50, "then half", by="ana")

    assert current_rollout(registry) == wider and wider.percent == 50.0
    registry.client.set_registered_model_alias(registry.model_name, CHALLENGER, "1")
    registry.promote("2", "someone promoted v2 by hand", moved_by="bob")
    with pytest.raises(RolloutError, match="a canary rollout of v2 is in progress"):
        start_rollout(registry, CANARY, 5, "v1 back as challenger", by="ana")


@pytest.mark.parametrize(
    ("mode", "percent", "message"),
    [("blue-green", 10, "mode must be"), (CANARY, 0, r"percent must be in \(0, 100\]"),
     (CANARY, 100.5, "percent must be"), (NONE, 10, "mode must be")],  # fmt: skip
)
def test_a_rollout_needs_a_mode_and_a_share(registry, mode, percent, message):
    with pytest.raises(RolloutError, match=message):
        start_rollout(registry, mode, percent, "why", by="ana")
    assert current_rollout(registry) == Rollout()


def test_a_share_below_one_percent_is_a_share(registry):
    assert start_rollout(registry, CANARY, 0.5, "a trickle", by="ana").percent == 0.5


def test_a_rollout_needs_a_challenger_other_than_the_champion(registry):
    registry.client.set_registered_model_alias(registry.model_name, CHALLENGER, "1")
    with pytest.raises(RolloutError, match="already the champion"):
        start_rollout(registry, CANARY, 10, "why", by="ana")
    registry.client.delete_registered_model_alias(registry.model_name, CHALLENGER)
    with pytest.raises(RolloutError, match="needs a champion and a challenger"):
        start_rollout(registry, CANARY, 10, "why", by="ana")


def test_a_challenger_that_does_not_load_is_not_rolled_out(registry, tmp_path):
    version = registry.client.get_model_version(registry.model_name, "2")
    logged = Path(urlparse(registry.client.get_model_version_download_uri(registry.model_name, "2")).path)
    broken = tmp_path / "broken_model"  # a copy of a real logged model, its learner files damaged
    shutil.copytree(logged, broken)
    for path in (broken / "artifacts" / "model_folder").iterdir():
        if path.name != "kind.json":
            path.write_text("corrupted")
    registered = registry.client.create_model_version(registry.model_name, broken.as_uri(), run_id=version.run_id)
    registry.set_challenger(str(registered.version), "broken", moved_by="tests")

    with pytest.raises(CorruptModelArtifactError, match="does not load and score"):
        start_rollout(registry, CANARY, 10, "why", by="ana")
    assert current_rollout(registry) == Rollout()


def test_promote_moves_the_champion_and_ends_the_rollout(registry):
    start_rollout(registry, CANARY, 25, "v2 looks fine", by="ana")

    move = promote_rollout(registry, "v2 held up at 25 %", by="ana")

    assert registry.version_for(CHAMPION) == "2" and (move.action, move.from_version, move.to_version) == ("promote", "1", "2")
    ended = current_rollout(registry)
    assert (ended.mode, ended.end, ended.ended_by, ended.challenger_version) == (NONE, "promoted", "ana", "2")
    assert ended.ended_at >= ended.started_at and registry.alias_log()[-1].moved_by == "ana"
    with pytest.raises(RolloutError, match="no rollout in progress to promote"):
        promote_rollout(registry, "again", by="ana")


def test_abort_sends_traffic_back_and_is_in_the_alias_log(registry):
    started = start_rollout(registry, CANARY, 25, "try v2", by="ana")

    ended = abort_rollout(registry, "guardrail breached: challenger p99_latency_ms 80 > 50", by="guardrail (replica-a)")

    assert current_rollout(registry) == ended and not ended.active
    assert ended.end == "aborted: guardrail breached: challenger p99_latency_ms 80 > 50"
    assert ended.started_at == started.started_at and ended.ended_by == "guardrail (replica-a)"
    last = registry.alias_log()[-1]
    assert (last.alias, last.action, last.from_version, last.to_version) == (CHALLENGER, "rollout_abort", "2", "1")
    assert last.moved_by == "guardrail (replica-a)" and "p99_latency_ms 80 > 50" in last.reason
    assert registry.version_for(CHAMPION) == "1" and registry.champion_history() == ["1"]
    with pytest.raises(RolloutError, match="no rollout in progress to abort"):
        abort_rollout(registry, "again", by="ana")


def test_a_guardrail_aborts_only_the_rollout_it_judged(registry):
    judged = start_rollout(registry, CANARY, 25, "try v2", by="ana")
    abort_rollout(registry, "by hand", by="ana")
    restarted = start_rollout(registry, SHADOW, 100, "shadow instead", by="ana")
    entries = len(registry.alias_log())

    assert abort_rollout(registry, "late verdict", by="guardrail", started_at=judged.started_at) is None
    assert current_rollout(registry) == restarted and len(registry.alias_log()) == entries
    assert abort_rollout(registry, "verdict", by="guardrail", started_at=restarted.started_at).end == "aborted: verdict"


def test_an_abort_after_the_champion_moved_names_the_champion_now_serving(registry):
    start_rollout(registry, CANARY, 25, "try v2", by="ana")
    registry.promote("2", "promoted by hand while the canary ran", moved_by="bo")

    ended = abort_rollout(registry, "the canary is moot", by="ana")

    assert ended.ended_at >= ended.started_at and ended.ended_by == "ana"
    last = registry.alias_log()[-1]
    assert (last.action, last.from_version, last.to_version) == ("rollout_abort", "2", "2")


class ConstantScore:
    def __init__(self, score: float):
        self.score = score

    def predict_vectors(self, categorical, numeric):
        import numpy as np

        return np.array([self.score])


@pytest.mark.parametrize(
    "score, is_probability", [(0.0, True), (1.0, True), (-1e-9, False), (1.0 + 1e-9, False), (float("nan"), False)]
)
def test_a_challenger_is_rolled_out_only_when_it_scores_a_probability(monkeypatch, registry, score, is_probability):
    """The loading itself is real in the test above; here the loaded model answers `score`."""
    monkeypatch.setattr("ml_assets.models.scoring.load_scoring_model", lambda registry, version: ConstantScore(score))
    if is_probability:
        assert start_rollout(registry, SHADOW, 100, "scores a probability", by="ana").active
    else:
        with pytest.raises(CorruptModelArtifactError, match="not a probability"):
            start_rollout(registry, SHADOW, 100, "scores outside [0, 1]", by="ana")
        assert not current_rollout(registry).active


def test_the_serving_metrics_show_one_rollout_mode_at_a_time():
    from ml_assets.serving.metrics import ServingMetrics

    metrics = ServingMetrics()
    metrics.set_rollout(CANARY, 25.0)
    exposition = metrics.exposition().decode()
    states = {m: f'ml_assets_serving_rollout_state{{mode="{m}"}}' for m in (NONE, SHADOW, CANARY)}
    assert f"{states[CANARY]} 1.0" in exposition
    assert f"{states[NONE]} 0.0" in exposition and f"{states[SHADOW]} 0.0" in exposition
    assert "ml_assets_serving_rollout_percent 25.0" in exposition
