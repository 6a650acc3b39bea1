"""The torch step's training on a GPU machine, from a file: `python -m ml_assets.bench.gpu_step`.

Where the lake is:
    python -m ml_assets.bench.gpu_step --export build/gpu/week.parquet [--week 2013-12-16]
writes one week's training window (the 13 weeks before it, as `training_set` pins them) and the
week itself (its out-of-time days), only the columns the network reads.

On the GPU machine (deploy/gpu-smoke.sh runs it there):
    python -m ml_assets.bench.gpu_step --features build/gpu/week.parquet --json gpu-step.json
trains the network as `torch_model` does (TorchTrainConfig's defaults) on CUDA, scores the week
out of time, times two epochs on the CPU, and reports torch's version, its CUDA build and the GPU.
Needs polars, numpy, scikit-learn and torch only.
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from ml_assets.flights.feature_spec import FEATURES, FEATURES_TABLE, LABEL
from ml_assets.models.dataset import TIME_COLUMN

WINDOW_WEEKS = 13  # training_set's default
CPU_EPOCHS = 2


def export_week(path: Path, week: date) -> int:
    """Write the week's training window and its own days from the local lake; returns rows."""
    from ml_assets.resources import resources_for_env

    storage = resources_for_env()["storage"]
    first, last = week - timedelta(weeks=WINDOW_WEEKS), week + timedelta(days=6)
    frame = (
        storage.scan(FEATURES_TABLE, first, last)
        .select("date", TIME_COLUMN, *FEATURES, LABEL)
        .with_columns(split=pl.when(pl.col("date") < week).then(pl.lit("train")).otherwise(pl.lit("test")))
        .collect()
    )
    days = frame["date"].n_unique()
    if days != (last - first).days + 1:
        raise SystemExit(f"{storage.table_uri(FEATURES_TABLE)} holds {days} of the {(last - first).days + 1} days "
                         f"{first}..{last}: materialize them first (make demo)")  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path, compression_level=22)
    return frame.height


def train_on_gpu(path: Path, require_cuda: bool) -> dict:
    import torch

    from ml_assets.bench.model_quality import scores_of
    from ml_assets.models.torch_tabular import TorchTrainConfig, train_torch_tabular

    if require_cuda and not torch.cuda.is_available():
        raise SystemExit(f"torch {torch.__version__} sees no CUDA device")
    frame = pl.read_parquet(path)
    train, test = frame.filter(pl.col("split") == "train"), frame.filter(pl.col("split") == "test")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = TorchTrainConfig(device=device)

    began = time.perf_counter()
    model = train_torch_tabular(train, config)
    seconds = time.perf_counter() - began
    cpu = train_torch_tabular(train, replace(config, device="cpu", max_epochs=CPU_EPOCHS, patience=CPU_EPOCHS))
    metrics = model.validation_metrics
    return {
        "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "rows": {"train": train.height, "test": test.height},
        "trained_on": device,
        "seconds_total": round(seconds, 1),
        "seconds_per_epoch": round(metrics["seconds_per_epoch"], 3),
        "epochs_run": int(metrics["epochs_run"]),
        "best_epoch": int(metrics["best_epoch"]),
        "cpu_seconds_per_epoch": round(cpu.validation_metrics["seconds_per_epoch"], 3),
        "out_of_time": scores_of(test, model.predict_proba(test)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, help="write the week's features to this parquet file")
    parser.add_argument("--week", type=date.fromisoformat, default=date(2013, 12, 16), help="a Monday")
    parser.add_argument("--features", type=Path, help="train on this exported file")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--require-cuda", action="store_true", help="fail when torch sees no GPU")
    args = parser.parse_args(argv)
    if args.export:
        rows = export_week(args.export, args.week)
        print(f"{args.export}: {rows} rows, {args.export.stat().st_size / 2**20:.1f} MiB")
        return 0
    if not args.features:
        parser.error("--export or --features")
    figures = train_on_gpu(args.features, args.require_cuda)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
