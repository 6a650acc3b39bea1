"""Rollouts of the challenger, recorded in the registry so that every serving replica follows the
same one (`ml-assets rollout shadow|canary --percent P|promote|abort`).

The rollout is one registered-model tag, `rollout`: JSON with the mode (none, shadow, canary), the
percent of flights, the challenger and champion versions it compares, when and by whom it started,
and how it ended. One tag is written at once, so a replica never reads half a rollout. Every start
and end is also appended to the alias log (`ModelRegistry.record`), next to the alias moves; a
promotion moves `champion` through `ModelRegistry.promote`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone

from ml_assets.models.registry import CHALLENGER, CHAMPION, AliasMove, CorruptModelArtifactError

NONE, SHADOW, CANARY = "none", "shadow", "canary"
MODES = (NONE, SHADOW, CANARY)
ROLLOUT_TAG = "rollout"


class RolloutError(ValueError):
    """A rollout command that cannot be carried out (the reason says why)."""


@dataclass(frozen=True)
class Rollout:
    mode: str = NONE
    percent: float = 0.0  # canary: share of flights the challenger answers; shadow: share it scores
    challenger_version: str | None = None
    champion_version: str | None = None  # the champion when it started
    started_at: str | None = None  # ISO 8601, UTC; identifies the rollout
    started_by: str | None = None
    reason: str | None = None
    ended_at: str | None = None
    ended_by: str | None = None
    end: str | None = None  # "promoted" or "aborted: <why>"

    @property
    def active(self) -> bool:
        return self.mode != NONE


def rollout_from_tags(tags: dict[str, str]) -> Rollout:
    """The rollout recorded in a registered model's tags (none when there is no record)."""
    text = tags.get(ROLLOUT_TAG)
    return Rollout(**json.loads(text)) if text else Rollout()


def current_rollout(registry) -> Rollout:
    return rollout_from_tags(registry.client.get_registered_model(registry.model_name).tags)


def _write(registry, rollout: Rollout) -> None:
    registry.client.set_registered_model_tag(registry.model_name, ROLLOUT_TAG, json.dumps(asdict(rollout)))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def check_scores(registry, version: str) -> None:
    """Load the version from its native files, as the service does, and score a row."""
    import numpy as np

    from ml_assets.flights.feature_spec import CATEGORICAL_FEATURES, NUMERIC_FEATURES
    from ml_assets.models.scoring import load_scoring_model

    try:
        model = load_scoring_model(registry, version)
        score = model.predict_vectors([(None,) * len(CATEGORICAL_FEATURES)], np.full((1, len(NUMERIC_FEATURES)), np.nan))
    except Exception as error:
        raise CorruptModelArtifactError(f"{registry.model_name} v{version} does not load and score: {error}") from error
    if not 0.0 <= float(score[0]) <= 1.0:
        raise CorruptModelArtifactError(f"{registry.model_name} v{version} scores {score[0]}, not a probability")


def start_rollout(registry, mode: str, percent: float, reason: str, by: str) -> Rollout:
    """Start (or change the share of) a shadow or canary rollout of the current challenger."""
    if mode not in (SHADOW, CANARY):
        raise RolloutError(f"mode must be {SHADOW!r} or {CANARY!r}, got {mode!r}")
    if not 0.0 < percent <= 100.0:
        raise RolloutError(f"percent must be in (0, 100], got {percent}")
    champion, challenger = registry.version_for(CHAMPION), registry.version_for(CHALLENGER)
    if champion is None or challenger is None:
        raise RolloutError(f"{registry.model_name} needs a champion and a challenger (now: {champion}, {challenger})")
    if champion == challenger:
        raise RolloutError(f"the challenger v{challenger} is already the champion")
    current = current_rollout(registry)
    if current.active and current.challenger_version != challenger:
        raise RolloutError(
            f"a {current.mode} rollout of v{current.challenger_version} is in progress: abort or promote it first"
        )
    check_scores(registry, challenger)
    rollout = Rollout(mode, float(percent), challenger, champion, _now(), by, reason)
    _write(registry, rollout)
    registry.record(CHALLENGER, f"rollout_{mode}", champion, challenger, f"{percent:g} %: {reason}", moved_by=by)
    return rollout


def promote_rollout(registry, reason: str, by: str) -> AliasMove:
    """Make the rolled-out challenger the champion and end the rollout."""
    current = current_rollout(registry)
    if not current.active:
        raise RolloutError(f"{registry.model_name} has no rollout in progress to promote")
    move = registry.promote(current.challenger_version, reason, moved_by=by)
    _write(registry, replace(current, mode=NONE, ended_at=_now(), ended_by=by, end="promoted"))
    return move


def abort_rollout(registry, reason: str, by: str, started_at: str | None = None) -> Rollout | None:
    """Send all traffic back to the champion. With `started_at`, only that rollout is aborted
    (a guardrail aborts what it judged, not a rollout started since): None when it is over."""
    current = current_rollout(registry)
    if not current.active or (started_at is not None and current.started_at != started_at):
        if started_at is None:
            raise RolloutError(f"{registry.model_name} has no rollout in progress to abort")
        return None
    ended = replace(current, mode=NONE, ended_at=_now(), ended_by=by, end=f"aborted: {reason}")
    _write(registry, ended)
    champion = registry.version_for(CHAMPION) or current.champion_version
    registry.record(CHALLENGER, "rollout_abort", current.challenger_version, champion, reason, moved_by=by)
    return ended


def rollout_command(action: str, percent: float | None, reason: str | None) -> int:
    """`ml-assets rollout shadow|canary|promote|abort|status` on the environment's registry."""
    import getpass
    import sys

    import dagster as dg
    from mlflow.exceptions import MlflowException

    from ml_assets.models.tracking import MlflowUnavailableError
    from ml_assets.resources import resources_for_env

    if action != "status" and not reason:
        print(f"ml-assets rollout {action}: --reason is required (it goes into the alias log)", file=sys.stderr)
        return 2
    try:
        with dg.build_resources({"mlflow": resources_for_env()["mlflow"]}) as resources:
            registry = resources.mlflow.registry()
        who = f"{getpass.getuser()} (ml-assets rollout {action})"
        if action == "status":
            print(json.dumps(asdict(current_rollout(registry)), indent=2))
        elif action in (SHADOW, CANARY):
            if percent is None and action == CANARY:
                raise RolloutError("a canary needs --percent")
            started = start_rollout(registry, action, 100.0 if percent is None else percent, reason, who)
            print(f"{registry.model_name}: {started.mode} rollout of v{started.challenger_version} at "
                  f"{started.percent:g} % against champion v{started.champion_version}")  # fmt: skip
        elif action == "promote":
            move = promote_rollout(registry, reason, who)
            print(f"{registry.model_name}: champion v{move.from_version} -> v{move.to_version}; rollout ended")
        else:
            ended = abort_rollout(registry, reason, who)
            print(f"{registry.model_name}: rollout of v{ended.challenger_version} aborted; all traffic on the champion")
    except (RolloutError, CorruptModelArtifactError, MlflowUnavailableError, MlflowException, LookupError) as error:
        print(f"ml-assets rollout {action}: refused: {error}", file=sys.stderr)
        return 1
    return 0
