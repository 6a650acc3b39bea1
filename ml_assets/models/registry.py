"""The MLflow model registry as the production pointer: `champion` and `challenger` aliases.

Every alias move is appended to an alias log stored as tags on the registered model, one tag per
move (`alias_move.<ns timestamp>` → JSON). The log thus lives in the same store as the aliases it
describes: it is as durable and as shared as the registry (Postgres in Kubernetes, the SQLite file
locally), needs no extra volume, and a rollback reads it from wherever the registry is reachable.
Tags are only ever added, never rewritten, which keeps the log append-only.

A move never happens half-way: the registry is probed first, the target artifact is downloaded,
loaded and scored on its input example, and if recording the move fails the alias is put back.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import cached_property

from ml_assets.models.tracking import MlflowUnavailableError, mlflow_client

CHAMPION = "champion"
CHALLENGER = "challenger"
ALIAS_LOG_PREFIX = "alias_move."


class CorruptModelArtifactError(RuntimeError):
    """A model version's artifact cannot be loaded or cannot score its input example."""


class NoPreviousChampionError(RuntimeError):
    """A rollback was asked for but the alias log holds no earlier champion."""


@dataclass(frozen=True)
class AliasMove:
    alias: str
    action: str  # "set" (challenger), "promote" or "rollback"
    from_version: str | None
    to_version: str
    moved_at: str  # ISO 8601, UTC
    reason: str
    dagster_run_id: str | None
    moved_by: str | None = None  # a user (CLI) or the Dagster asset that moved it


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def _logged_model_id(model_uri: str) -> str | None:
    """The logged model's id in a `models:/<model_id>` URI (what MLflow 3 logs). A tracking server
    refuses to register such a source without it; a local store does not ask."""
    rest = model_uri.removeprefix("models:/")
    return rest if model_uri.startswith("models:/") and "/" not in rest else None


def decide_promotion(
    challenger_metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    quality_passed: bool,
    margin: float,
    metric: str = "roc_auc",
) -> PromotionDecision:
    """Promote when quality checks passed and the challenger beats the champion by `margin` on
    `metric` (higher is better), both measured on the same evaluation data."""
    challenger = challenger_metrics[metric]
    if not quality_passed:
        return PromotionDecision(False, "challenger failed the model quality checks")
    if math.isnan(challenger):
        return PromotionDecision(False, f"challenger {metric} is undefined on the evaluation data")
    if champion_metrics is None:
        return PromotionDecision(True, f"no champion yet; challenger {metric} {challenger:.4f}")
    champion = champion_metrics[metric]
    verdict = "beats" if challenger >= champion + margin else "does not beat"
    return PromotionDecision(
        challenger >= champion + margin,
        f"challenger {metric} {challenger:.4f} {verdict} champion {champion:.4f} + margin {margin}",
    )


@dataclass(frozen=True)
class ModelRegistry:
    tracking_uri: str
    model_name: str

    @cached_property
    def client(self):
        return mlflow_client(self.tracking_uri)

    def register_version(
        self, model_uri: str, run_id: str | None = None, tags: dict | None = None
    ) -> str:
        """Register the logged model as a new version; returns the version number."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.model_name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            self.client.create_registered_model(self.model_name)
        version = self.client.create_model_version(
            self.model_name, model_uri, run_id=run_id, tags=tags, model_id=_logged_model_id(model_uri)
        )
        return str(version.version)

    def versions_tagged(self, **tags: str) -> dict[str, dict[str, str]]:
        """The versions whose tags include all of `tags`: version → its tags, oldest first."""
        found = self.client.search_model_versions(f"name = '{self.model_name}'")
        matching = {
            str(v.version): dict(v.tags) for v in found if tags.items() <= dict(v.tags).items()
        }
        return dict(sorted(matching.items(), key=lambda item: int(item[0])))

    def version_for(self, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(self.model_name, alias).version)
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(error).lower():
                return None
            raise MlflowUnavailableError(f"cannot read alias {alias}: {error}") from error

    def load(self, alias_or_version: str):
        """The pyfunc model behind an alias (`champion`) or a version number."""
        import mlflow.pyfunc

        version = alias_or_version if alias_or_version.isdigit() else self.version_for(alias_or_version)
        if version is None:
            raise LookupError(f"{self.model_name} has no version with alias {alias_or_version}")
        uri = self.client.get_model_version_download_uri(self.model_name, version)
        return mlflow.pyfunc.load_model(uri)

    def verify_loadable(self, version: str) -> None:
        """Download, load and score the version's input example, or raise CorruptModelArtifactError."""
        import mlflow.artifacts
        import mlflow.pyfunc
        import numpy as np
        from mlflow.models import Model

        uri = self.client.get_model_version_download_uri(self.model_name, version)
        try:
            with tempfile.TemporaryDirectory() as folder:
                local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder)
                example = Model.load(local).load_input_example(local)
                scores = np.asarray(mlflow.pyfunc.load_model(local).predict(example), dtype=float)
        except Exception as error:
            raise CorruptModelArtifactError(
                f"{self.model_name} version {version} cannot be loaded from {uri}: {error}"
            ) from error
        if not np.all((scores >= 0) & (scores <= 1)):
            raise CorruptModelArtifactError(
                f"{self.model_name} version {version} gives no valid probabilities on its input example"
            )

    def set_challenger(
        self, version: str, reason: str, dagster_run_id: str | None = None, moved_by: str | None = None
    ) -> AliasMove:
        return self._move(CHALLENGER, "set", version, reason, dagster_run_id, moved_by)

    def promote(
        self, version: str, reason: str, dagster_run_id: str | None = None, moved_by: str | None = None
    ) -> AliasMove:
        """Point `champion` at `version` after checking that its artifact loads and scores."""
        if self.version_for(CHAMPION) == str(version):
            raise ValueError(f"{self.model_name} version {version} is already the champion")
        self.verify_loadable(version)
        return self._move(CHAMPION, "promote", version, reason, dagster_run_id, moved_by)

    def rollback(
        self, reason: str, dagster_run_id: str | None = None, moved_by: str | None = None
    ) -> AliasMove:
        """Point `champion` back at the champion before the current one (one step per call)."""
        history = self.champion_history()
        if len(history) < 2:
            raise NoPreviousChampionError(
                f"{self.model_name} has no earlier champion to roll back to (history: {history})"
            )
        self.verify_loadable(history[-2])
        return self._move(CHAMPION, "rollback", history[-2], reason, dagster_run_id, moved_by)

    def alias_log(self) -> list[AliasMove]:
        """Every recorded alias move, oldest first."""
        tags = self.client.get_registered_model(self.model_name).tags
        entries = sorted((key, value) for key, value in tags.items() if key.startswith(ALIAS_LOG_PREFIX))
        return [AliasMove(**json.loads(value)) for _, value in entries]

    def champion_history(self) -> list[str]:
        """The champion versions still in effect, oldest first: promotions push, rollbacks pop."""
        history: list[str] = []
        for move in self.alias_log():
            if move.alias == CHAMPION and move.action == "promote":
                history.append(move.to_version)
            elif move.alias == CHAMPION and move.action == "rollback":
                history.pop()
        return history

    def _move(
        self,
        alias: str,
        action: str,
        version: str,
        reason: str,
        dagster_run_id: str | None,
        moved_by: str | None,
    ) -> AliasMove:
        previous = self.version_for(alias)
        move = AliasMove(
            alias=alias,
            action=action,
            from_version=previous,
            to_version=str(version),
            moved_at=datetime.now(timezone.utc).isoformat(),
            reason=reason[:2000],
            dagster_run_id=dagster_run_id,
            moved_by=moved_by,
        )
        self.client.set_registered_model_alias(self.model_name, alias, version)
        try:
            self.client.set_registered_model_tag(
                self.model_name, f"{ALIAS_LOG_PREFIX}{time.time_ns():020d}", json.dumps(asdict(move))
            )
        except Exception as error:
            self._restore(alias, previous)
            raise MlflowUnavailableError(
                f"could not record the move of {alias} to version {version}; alias restored: {error}"
            ) from error
        return move

    def _restore(self, alias: str, previous: str | None) -> None:
        if previous is None:
            self.client.delete_registered_model_alias(self.model_name, alias)
        else:
            self.client.set_registered_model_alias(self.model_name, alias, previous)

    def record(
        self,
        alias: str,
        action: str,
        from_version: str | None,
        to_version: str,
        reason: str,
        moved_by: str | None = None,
        dagster_run_id: str | None = None,
    ) -> AliasMove:
        """Append an entry to the alias log without moving an alias: traffic moved between the
        versions of `from_version` and `to_version` (a rollout started or aborted)."""
        entry = AliasMove(
            alias, action, from_version, str(to_version), datetime.now(timezone.utc).isoformat(),
            reason[:2000], dagster_run_id, moved_by,
        )  # fmt: skip
        self.client.set_registered_model_tag(
            self.model_name, f"{ALIAS_LOG_PREFIX}{time.time_ns():020d}", json.dumps(asdict(entry))
        )
        return entry
