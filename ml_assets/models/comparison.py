"""One week's model comparison: the candidates, the champion and the baselines on the same days.

Every model is scored out of time on the same rows; the candidate with the best ROC AUC is the
challenger. The baselines (historical disruption rate, logistic regression) are fitted on the
candidates' training window, so all of them had the same data to learn from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from ml_assets.models.metrics import Evaluation, evaluate

PredictProba = Callable[[pl.DataFrame], np.ndarray]
VERSION_SEPARATOR = " v"  # evaluations of registered models are named "<kind> v<version>"


def registered_name(kind: str, version: str) -> str:
    return f"{kind}{VERSION_SEPARATOR}{version}"


@dataclass(frozen=True)
class ModelComparison:
    evaluations: dict[str, Evaluation]
    challenger: str  # the name of the best candidate
    roles: dict[str, str]  # name -> candidate | challenger | champion | baseline

    @property
    def challenger_version(self) -> str:
        return self.challenger.rsplit(VERSION_SEPARATOR, 1)[1]

    def summary_rows(self, quality_passed: bool) -> pl.DataFrame:
        """One row per model: metrics, worst-slice gap, role, registry version (null for the
        baselines) and whether the challenger passed the quality checks."""
        from ml_assets.models.evaluation_report import summary_table

        return summary_table(self.evaluations).with_columns(
            pl.col("model").replace_strict(self.roles).alias("role"),
            pl.col("model").str.extract(rf"{VERSION_SEPARATOR}(\d+)$").alias("model_version"),
            pl.lit(quality_passed).alias("quality_passed"),
        )


def compare_models(
    test: pl.DataFrame,
    train: pl.DataFrame,
    candidates: dict[str, PredictProba],
    champion: tuple[str, PredictProba] | None,
    min_slice_rows: int,
) -> ModelComparison:
    """Score `candidates` and the `champion` (name, scorer) on `test`, next to baselines fitted
    on `train`; the candidate with the highest ROC AUC becomes the challenger."""
    from ml_assets.models.baselines import fit_logistic_baseline, fit_rate_baseline

    if not candidates:
        raise ValueError("there are no candidate models to compare")
    scorers = dict(candidates)
    roles = dict.fromkeys(candidates, "candidate")
    if champion is not None:
        scorers[champion[0]] = champion[1]
        roles[champion[0]] = "champion"
    for name, baseline in (("baseline_rate", fit_rate_baseline(train)), ("logistic", fit_logistic_baseline(train))):
        scorers[name] = baseline.predict_proba
        roles[name] = "baseline"

    evaluations = {name: evaluate(test, score(test), min_slice_rows=min_slice_rows) for name, score in scorers.items()}
    challenger = max(candidates, key=lambda name: evaluations[name].metrics["roc_auc"])
    roles[challenger] = "challenger"
    return ModelComparison(evaluations, challenger, roles)
