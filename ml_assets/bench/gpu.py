"""Both learners on a GPU against the CPU, on the model-quality protocol.

    python -m ml_assets.bench.gpu --features flight_features_2013.parquet --json OUT.json

Train on 2013-01-01..09-30, score 2013-10-01..12-31:
- torch: the tabular network on CUDA (seeded, early stopping, as `torch_model` trains it) at the
  default batch size and a larger one; a few epochs on the CPU for the time per epoch; the
  CUDA-trained model saved, loaded on the CPU and compared; a short run twice, to show whether
  CUDA training repeats.
- LightGBM: the same short search with LightGBM's OpenCL trainer (`device="gpu"`) and on all the
  CPU threads; a missing OpenCL driver is reported, not raised.

Needs polars, numpy, torch and lightgbm only, so it runs on a bare GPU machine: `--export PATH`
(run where the lake is) writes the 2013 flight_features it reads.
"""

import argparse
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from ml_assets.bench.model_quality import (
    MAX_BOOST_ROUNDS, TEST_START, TRAIN_END, YEAR_END, YEAR_START, scores_of, timed,
)  # fmt: skip
from ml_assets.flights.feature_spec import FEATURES, LABEL
from ml_assets.models.dataset import TIME_COLUMN

CPU_EPOCHS = 3
REPEAT_EPOCHS = 5
LARGE_BATCH = 4096
LGBM_TRIALS = 3


def export_features(path: Path) -> None:
    """Write the 2013 flight_features columns the models read (run where the lake is)."""
    from ml_assets.bench.model_quality import load_year
    from ml_assets.resources import resources_for_env

    frame, _ = load_year(resources_for_env()["storage"])
    frame.select("date", TIME_COLUMN, *FEATURES, LABEL).write_parquet(path, compression_level=22)


def torch_figures(train: pl.DataFrame, test: pl.DataFrame, device: str, max_epochs: int, seed: int) -> dict:
    from ml_assets.models.torch_tabular import TorchTabularModel, TorchTrainConfig, train_torch_tabular

    config = TorchTrainConfig(max_epochs=max_epochs, seed=seed, device=device)
    runs = {}
    for batch_size in (config.batch_size, LARGE_BATCH):
        model, seconds = timed(lambda: train_torch_tabular(train, replace(config, batch_size=batch_size)))
        metrics = model.validation_metrics
        runs[f"{device}_batch_{batch_size}"] = {
            "out_of_time": scores_of(test, model.predict_proba(test)), "seconds_total": seconds,
            "seconds_per_epoch": round(metrics["seconds_per_epoch"], 3),
            "epochs_run": metrics["epochs_run"], "best_epoch": metrics["best_epoch"],
        }  # fmt: skip
        print(f"torch {device} batch {batch_size}: {runs[f'{device}_batch_{batch_size}']}", flush=True)
        if batch_size == config.batch_size:
            default_model = model

    cpu = train_torch_tabular(train, replace(config, device="cpu", max_epochs=CPU_EPOCHS, patience=CPU_EPOCHS))
    cpu_epoch = cpu.validation_metrics["seconds_per_epoch"]
    runs[f"cpu_batch_{config.batch_size}"] = {"threads": config.num_threads, "epochs_run": CPU_EPOCHS,
                                              "seconds_per_epoch": round(cpu_epoch, 3)}  # fmt: skip
    with tempfile.TemporaryDirectory() as directory:
        default_model.save(Path(directory))
        reloaded = TorchTabularModel.load(Path(directory))
    short = replace(config, max_epochs=REPEAT_EPOCHS, patience=REPEAT_EPOCHS)
    return {
        "runs": runs,
        "cpu_over_device_epoch_time": round(cpu_epoch / default_model.validation_metrics["seconds_per_epoch"], 2),
        "reloaded_on_cpu_max_prediction_difference": float(
            np.abs(reloaded.predict_proba(test) - default_model.predict_proba(test)).max()
        ),
        "repeat_validation_log_losses": [
            train_torch_tabular(train, short).validation_metrics["validation_log_loss"] for _ in range(2)
        ],
    }


def lightgbm_figures(train: pl.DataFrame, test: pl.DataFrame, seed: int) -> dict:
    from ml_assets.models.lgbm import LgbmSearchConfig, train_lgbm

    search = LgbmSearchConfig(n_trials=LGBM_TRIALS, seed=seed, max_boost_rounds=MAX_BOOST_ROUNDS)
    setups = {"gpu_opencl": replace(search, device="gpu"), "cpu_all_threads": replace(search, num_threads=os.cpu_count())}
    figures = {"trials": LGBM_TRIALS}
    for name, config in setups.items():
        try:
            model, seconds = timed(lambda: train_lgbm(train, config))
        except Exception as error:  # LightGBMError without an OpenCL driver
            figures[name] = {"error": f"{type(error).__name__}: {error}"}
        else:
            figures[name] = {"out_of_time": scores_of(test, model.predict_proba(test)), "seconds_total": seconds,
                             "best_iteration": model.best_iteration}  # fmt: skip
        print(f"lightgbm {name}: {figures[name]}", flush=True)
    return figures


def run(features: Path, max_epochs: int, device: str = "cuda", seed: int = 42) -> dict:
    import torch

    frame = pl.read_parquet(features).filter(pl.col("date").is_between(YEAR_START, YEAR_END))
    train = frame.filter(pl.col("date") <= TRAIN_END)
    test = frame.filter(pl.col("date") >= TEST_START)
    return {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "cpu_count": os.cpu_count(),
        "versions": {"torch": torch.__version__, "polars": pl.__version__},
        "data": {"train_rows": train.height, "test_rows": test.height},
        "torch": torch_figures(train, test, device, max_epochs, seed),
        "lightgbm": lightgbm_figures(train, test, seed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, help="flight_features parquet (from --export)")
    parser.add_argument("--export", type=Path, help="write the 2013 flight_features here and stop")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument("--device", default="cuda", help="torch device to compare with the CPU")
    args = parser.parse_args()
    if args.export:
        export_features(args.export)
        return
    figures = run(args.features, args.max_epochs, args.device)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
