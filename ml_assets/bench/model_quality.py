"""`ml-assets bench model-quality`: every model on the protocol every number is quoted on.

Out of time: train on 2013-01-01..09-30, test on 2013-10-01..12-31 (flight_features from the lake,
materialized first when the year is missing). Plus the published anchor's protocol (a random
75/25 split, label arrival delay >= 30 min on flights that arrived) with our leak-free features,
against the 0.764 ROC AUC a logistic regression with post-departure columns reports.
"""

import time
from datetime import date

import numpy as np
import polars as pl

from ml_assets.flights.feature_spec import FEATURES_TABLE, LABEL
from ml_assets.models.metrics import METRIC_NAMES, classification_metrics

YEAR_START, TRAIN_END, TEST_START, YEAR_END = (
    date(2013, 1, 1), date(2013, 9, 30), date(2013, 10, 1), date(2013, 12, 31),
)  # fmt: skip
PUBLISHED_ANCHOR_ROC_AUC = 0.764
ANCHOR_DELAY_MINUTES = 30
TARGET_LIGHTGBM_ROC_AUC = 0.75
TARGET_TORCH_GAP = 0.02
MAX_BOOST_ROUNDS = 3000  # the tuned learning rates are small: 1000 rounds cut the best trials short


def load_year(storage) -> tuple[pl.DataFrame, int]:
    """flight_features for 2013 (materializing the data layers first if days are missing)."""
    covered = (
        storage.scan(FEATURES_TABLE, YEAR_START, YEAR_END).select(pl.col("date").n_unique()).collect().item()
        if storage.exists(FEATURES_TABLE)
        else 0
    )
    if covered < (YEAR_END - YEAR_START).days + 1:
        import dagster as dg

        from ml_assets.runs import ensure_dagster_home, run_data_layers

        ensure_dagster_home()
        print(f"flight_features covers {covered} days of 2013: materializing the data layers ...", flush=True)
        results = run_data_layers(dg.DagsterInstance.get(), YEAR_START, YEAR_END, {"storage": storage})
        if not all(r.success for r in results):
            raise RuntimeError("materializing the data layers failed; see the run logs above")
    version = storage.version(FEATURES_TABLE)
    return storage.scan(FEATURES_TABLE, YEAR_START, YEAR_END, version=version).collect(), version


def scores_of(frame: pl.DataFrame, scores) -> dict[str, float]:
    from ml_assets.models.dataset import label_vector

    metrics = classification_metrics(label_vector(frame), scores)
    return {name: round(metrics[name], 5) for name in METRIC_NAMES}


def timed(fit):
    began = time.perf_counter()
    model = fit()
    return model, round(time.perf_counter() - began, 1)


def run(n_trials: int, max_epochs: int, seed: int = 42) -> dict:
    from ml_assets.models.baselines import fit_logistic_baseline, fit_rate_baseline
    from ml_assets.models.lgbm import LgbmSearchConfig, train_lgbm
    from ml_assets.models.torch_tabular import TorchTrainConfig, train_torch_tabular
    from ml_assets.resources import resources_for_env

    frame, version = load_year(resources_for_env()["storage"])
    train = frame.filter(pl.col("date") <= TRAIN_END)
    test = frame.filter(pl.col("date") >= TEST_START)
    search = LgbmSearchConfig(n_trials=n_trials, seed=seed, max_boost_rounds=MAX_BOOST_ROUNDS)
    print(f"train {train.height} rows, test {test.height} rows; training ...", flush=True)

    fitters = {
        "lightgbm": lambda: train_lgbm(train, search),
        "torch": lambda: train_torch_tabular(train, TorchTrainConfig(max_epochs=max_epochs, seed=seed)),
        "baseline_rate": lambda: fit_rate_baseline(train),
        "logistic": lambda: fit_logistic_baseline(train),
    }
    models, seconds = {}, {}
    for name, fit in fitters.items():
        model, seconds[name] = timed(fit)
        models[name] = scores_of(test, model.predict_proba(test))
        print(f"  {name:<14} ROC AUC {models[name]['roc_auc']:.4f}  ({seconds[name]} s)", flush=True)

    anchor = published_anchor(frame, search, seed)
    lightgbm, torch = models["lightgbm"]["roc_auc"], models["torch"]["roc_auc"]
    return {
        "protocol": {"train": f"{YEAR_START}..{TRAIN_END}", "test": f"{TEST_START}..{YEAR_END}",
                     "label": "arrival delay >= 15 min, cancelled or diverted"},
        "data": {"flight_features_version": version, "train_rows": train.height, "test_rows": test.height},
        "config": {"lightgbm_n_trials": n_trials, "lightgbm_max_boost_rounds": MAX_BOOST_ROUNDS, "torch_max_epochs": max_epochs, "seed": seed},
        "models": models,
        "seconds": seconds,
        "published_anchor": anchor,
        "targets": {
            "lightgbm_roc_auc_at_least_0_75": lightgbm >= TARGET_LIGHTGBM_ROC_AUC,
            "lightgbm_above_both_baselines": lightgbm > max(models["baseline_rate"]["roc_auc"], models["logistic"]["roc_auc"]),
            "torch_within_0_02_of_lightgbm": abs(lightgbm - torch) <= TARGET_TORCH_GAP,
        },
    }  # fmt: skip


def published_anchor(frame: pl.DataFrame, search, seed: int) -> dict:
    """A random 75/25 split of the flights that arrived, label arrival delay >= 30 min."""
    from ml_assets.models.baselines import fit_logistic_baseline
    from ml_assets.models.lgbm import train_lgbm

    arrived = frame.filter(pl.col("label_arr_delay").is_not_null()).with_columns(
        (pl.col("label_arr_delay") >= ANCHOR_DELAY_MINUTES).alias(LABEL)
    )
    in_train = np.random.default_rng(seed).random(arrived.height) < 0.75
    train, test = arrived.filter(pl.Series(in_train)), arrived.filter(pl.Series(~in_train))
    lightgbm = train_lgbm(train, search)
    logistic = fit_logistic_baseline(train)
    figures = {
        "protocol": "random 75/25 split, label arr_delay >= 30 min, flights that arrived, leak-free features",
        "published_roc_auc": PUBLISHED_ANCHOR_ROC_AUC,
        "rows": arrived.height,
        "positive_rate": round(float(arrived[LABEL].mean()), 4),
        "lightgbm": scores_of(test, lightgbm.predict_proba(test)),
        "logistic": scores_of(test, logistic.predict_proba(test)),
    }
    print(f"  anchor protocol: LightGBM ROC AUC {figures['lightgbm']['roc_auc']:.4f} "
          f"(logistic {figures['logistic']['roc_auc']:.4f}; published {PUBLISHED_ANCHOR_ROC_AUC})", flush=True)  # fmt: skip
    return figures
