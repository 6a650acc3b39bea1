"""LightGBM with an Optuna hyperparameter search on a time-ordered validation split.

Deterministic: a seeded TPE sampler, LightGBM's `deterministic` mode with a fixed thread count and
every seed parameter set, so the same data, config and seed give the same model and metrics (only
when the search is bounded by `n_trials`; a `timeout_s` may cut it at a different trial).
Each trial trains with early stopping on the validation split and reports its validation AUC every
boosting round, so the median pruner stops unpromising trials early. The final model is refitted
on the whole window (train + validation) with the best parameters and best round count.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ml_assets.models.dataset import (
    CategoryVocabulary,
    label_vector,
    lightgbm_frame,
    split_by_time,
)
from ml_assets.models.progress import Progress, Report


@dataclass(frozen=True)
class LgbmSearchConfig:
    n_trials: int = 30
    timeout_s: float | None = None
    seed: int = 42
    num_threads: int = 2
    validation_fraction: float = 0.2
    max_boost_rounds: int = 1000
    early_stopping_rounds: int = 50
    device: str = "cpu"  # "gpu": LightGBM's OpenCL trainer (the PyPI wheel has it; needs an OpenCL driver)


@dataclass
class LgbmModel:
    """A fitted booster plus the vocabulary it was trained with."""

    KIND = "lightgbm"

    booster: object
    vocabulary: CategoryVocabulary
    params: dict
    best_iteration: int
    validation_metrics: dict[str, float] = field(default_factory=dict)

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        """Probability of disruption per row (1-D)."""
        return np.asarray(self.booster.predict(lightgbm_frame(frame, self.vocabulary)), dtype=np.float64)

    def predict_encoded(self, codes: np.ndarray, numeric: np.ndarray) -> np.ndarray:
        """The same probabilities from category codes and the numeric matrix (no frame): LightGBM
        reads a pandas categorical as its codes, which are the vocabulary's."""
        matrix = np.hstack([codes.astype(np.float64), numeric.astype(np.float64, copy=False)])
        return np.asarray(self.booster.predict(matrix, num_threads=1), dtype=np.float64)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / "booster.txt"))
        metadata = {
            "vocabulary": self.vocabulary.categories,
            "params": self.params,
            "best_iteration": self.best_iteration,
            "validation_metrics": self.validation_metrics,
        }
        (directory / "metadata.json").write_text(json.dumps(metadata, indent=2))

    @classmethod
    def load(cls, directory: Path) -> LgbmModel:
        import lightgbm as lgb

        metadata = json.loads((directory / "metadata.json").read_text())
        return cls(
            booster=lgb.Booster(model_file=str(directory / "booster.txt")),
            vocabulary=CategoryVocabulary(metadata["vocabulary"]),
            params=metadata["params"],
            best_iteration=metadata["best_iteration"],
            validation_metrics=metadata["validation_metrics"],
        )


def fixed_params(config: LgbmSearchConfig) -> dict:
    """Parameters that every trial shares: objective, determinism and seeds."""
    return {
        "objective": "binary",
        "metric": "auc",
        "verbosity": -1,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": config.num_threads,
        "device_type": config.device,
        "seed": config.seed,
        "bagging_seed": config.seed,
        "feature_fraction_seed": config.seed,
        "data_random_seed": config.seed,
    }


# The search's first trial: a sound default, so the search never ends worse than it on validation.
# The pruner compares trials round by round, which favours fast learning rates early on. Measured
# on the 2013 protocol, 30 trials without this start ended at 0.7729 validation ROC AUC (0.7504
# out of time); this trial alone reaches 0.7739 (0.7513).
DEFAULT_TRIAL = {
    "learning_rate": 0.03,
    "num_leaves": 63,
    "min_child_samples": 100,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "lambda_l2": 1.0,
    "cat_smooth": 10.0,
}


def suggest_params(trial) -> dict:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 10, 200, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "bagging_freq": 1,
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
        "cat_smooth": trial.suggest_float("cat_smooth", 1.0, 50.0, log=True),
    }


def _pruning_callback(trial):
    """Report the validation AUC each round; stop the trial when the pruner says so."""
    import optuna

    def callback(env) -> None:
        for _, metric, value, _ in env.evaluation_result_list:
            if metric == "auc":
                trial.report(value, step=env.iteration)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at round {env.iteration}")

    return callback


def train_lgbm(frame: pl.DataFrame, config: LgbmSearchConfig = LgbmSearchConfig(), progress: Report | None = None) -> LgbmModel:
    """Search hyperparameters on a time-ordered split, then refit on the whole window; `progress`
    hears of the trials as they end (trial n of N, the best ROC AUC so far, the time elapsed)."""
    import lightgbm as lgb
    import optuna

    train, validation = split_by_time(frame, config.validation_fraction)
    vocabulary = CategoryVocabulary.fit(train)
    # built once and shared by all trials: binning must not depend on a trial's min_child_samples
    train_set = lgb.Dataset(
        lightgbm_frame(train, vocabulary),
        label_vector(train),
        params={"feature_pre_filter": False, "verbosity": -1},
        free_raw_data=False,
    )
    validation_set = lgb.Dataset(
        lightgbm_frame(validation, vocabulary), label_vector(validation), reference=train_set
    )
    base = fixed_params(config)

    def objective(trial) -> float:
        with warnings.catch_warnings():
            # the shared validation set takes each trial's params, which LightGBM warns about
            warnings.filterwarnings("ignore", message="Overriding the parameters from Reference Dataset")
            booster = lgb.train(
                {**base, **suggest_params(trial)},
                train_set,
                num_boost_round=config.max_boost_rounds,
                valid_sets=[validation_set],
                callbacks=[
                    lgb.early_stopping(config.early_stopping_rounds, verbose=False),
                    _pruning_callback(trial),
                ],
            )
        trial.set_user_attr("best_iteration", booster.best_iteration)
        return booster.best_score["valid_0"]["auc"]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=20),
    )
    study.enqueue_trial(DEFAULT_TRIAL)
    search = Progress(progress, "LightGBM search")

    def report(study, trial) -> None:
        done = trial.number + 1
        best = max((t.value for t in study.trials if t.state.name == "COMPLETE"), default=None)
        best_text = f"best ROC AUC {best:.4f}" if best is not None else "none complete yet"
        search.step(f"trial {done} of {config.n_trials} {trial.state.name.lower()}, {best_text}", final=done == config.n_trials)

    study.optimize(objective, n_trials=config.n_trials, timeout=config.timeout_s, callbacks=[report])

    best = study.best_trial
    params = {**base, **suggest_params(optuna.trial.FixedTrial(best.params))}
    best_iteration = int(best.user_attrs["best_iteration"])
    validation_metrics = {
        "validation_roc_auc": float(best.value),
        "trials_completed": float(sum(t.state.name == "COMPLETE" for t in study.trials)),
        "trials_pruned": float(sum(t.state.name == "PRUNED" for t in study.trials)),
    }

    vocabulary = CategoryVocabulary.fit(frame)
    booster = lgb.train(
        params,
        lgb.Dataset(lightgbm_frame(frame, vocabulary), label_vector(frame)),
        num_boost_round=best_iteration,
    )
    return LgbmModel(booster, vocabulary, params, best_iteration, validation_metrics)
