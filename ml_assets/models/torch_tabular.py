"""A tabular neural network: categorical embeddings plus standardised numeric features.

Numeric features are standardised with training-split statistics; a missing value becomes 0 (the
mean) and sets a per-feature missing indicator. Training is seeded, stops early on the validation
loss and keeps the best epoch's weights. It runs on CUDA when available, otherwise on the CPU
(`device` forces either); the fitted model always predicts on the CPU so it loads anywhere.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ml_assets.models.dataset import CategoryVocabulary, label_vector, numeric_matrix, split_by_time
from ml_assets.models.progress import Progress, Report


@dataclass(frozen=True)
class TorchTrainConfig:
    hidden_sizes: tuple[int, ...] = (128, 64)
    max_embedding_dim: int = 16
    dropout: float = 0.1
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    batch_size: int = 512
    max_epochs: int = 60
    patience: int = 6
    validation_fraction: float = 0.2
    min_category_count: int = 5
    seed: int = 42
    num_threads: int = 2
    device: str = "auto"  # "auto" (CUDA when available), "cuda" or "cpu"


@dataclass(frozen=True)
class NumericScaler:
    """Training means and standard deviations; NaN becomes 0 after scaling."""

    means: list[float]
    stds: list[float]

    @classmethod
    def fit(cls, values: np.ndarray) -> NumericScaler:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column has no mean
            means = np.nan_to_num(np.nanmean(values, axis=0))
            stds = np.nan_to_num(np.nanstd(values, axis=0))
        return cls(means.tolist(), np.where(stds > 0, stds, 1.0).tolist())

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Scaled values followed by one missing indicator per column."""
        missing = np.isnan(values)
        scaled = np.where(missing, 0.0, (values - np.array(self.means)) / np.array(self.stds))
        return np.hstack([scaled, missing.astype(np.float64)]).astype(np.float32)


def build_network(cardinalities: list[int], numeric_width: int, config: TorchTrainConfig):
    import torch
    from torch import nn

    class TabularNetwork(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            dims = [min(config.max_embedding_dim, (n + 1) // 2) for n in cardinalities]
            self.embeddings = nn.ModuleList(nn.Embedding(n, d) for n, d in zip(cardinalities, dims))
            layers, width = [], sum(dims) + numeric_width
            for hidden in config.hidden_sizes:
                layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
                width = hidden
            self.body = nn.Sequential(*layers, nn.Linear(width, 1))

        def forward(self, codes, numeric):
            embedded = [embedding(codes[:, i]) for i, embedding in enumerate(self.embeddings)]
            return self.body(torch.cat([*embedded, numeric], dim=1)).squeeze(1)

    return TabularNetwork()


@dataclass
class TorchTabularModel:
    KIND = "torch_tabular"

    network: object
    vocabulary: CategoryVocabulary
    scaler: NumericScaler
    config: TorchTrainConfig
    validation_metrics: dict[str, float]

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        import torch

        return self.predict_encoded(self.vocabulary.codes(frame), numeric_matrix(frame))

    def predict_encoded(self, codes: np.ndarray, numeric: np.ndarray) -> np.ndarray:
        """Probabilities from category codes and the raw numeric matrix (NaN = missing)."""
        import torch

        self.network.eval()
        with torch.no_grad():
            logits = self.network(torch.as_tensor(codes), torch.as_tensor(self.scaler.transform(numeric)))
            return torch.sigmoid(logits).numpy().astype(np.float64)

    def save(self, directory: Path) -> None:
        import torch

        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.network.state_dict(), directory / "network.pt")
        metadata = {
            "vocabulary": self.vocabulary.categories,
            "scaler": asdict(self.scaler),
            "config": asdict(self.config),
            "validation_metrics": self.validation_metrics,
        }
        (directory / "metadata.json").write_text(json.dumps(metadata, indent=2))

    @classmethod
    def load(cls, directory: Path) -> TorchTabularModel:
        import torch

        metadata = json.loads((directory / "metadata.json").read_text())
        config_values = metadata["config"]
        config = TorchTrainConfig(**{**config_values, "hidden_sizes": tuple(config_values["hidden_sizes"])})
        vocabulary = CategoryVocabulary(metadata["vocabulary"])
        scaler = NumericScaler(**metadata["scaler"])
        network = build_network(vocabulary.cardinalities(), 2 * len(scaler.means), config)
        network.load_state_dict(torch.load(directory / "network.pt", map_location="cpu", weights_only=True))
        network.eval()
        return cls(network, vocabulary, scaler, config, metadata["validation_metrics"])


def _tensors(frame: pl.DataFrame, vocabulary: CategoryVocabulary, scaler: NumericScaler, device):
    import torch

    codes = torch.as_tensor(vocabulary.codes(frame), device=device)
    numeric = torch.as_tensor(scaler.transform(numeric_matrix(frame)), device=device)
    return codes, numeric


def training_device(requested: str):
    """The torch device for `TorchTrainConfig.device`; asking for CUDA without one is an error."""
    import torch

    if requested not in ("auto", "cuda", "cpu"):
        raise ValueError(f"device must be 'auto', 'cuda' or 'cpu', got {requested!r}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for, but torch sees no CUDA device")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def train_torch_tabular(
    frame: pl.DataFrame, config: TorchTrainConfig = TorchTrainConfig(), progress: Report | None = None
) -> TorchTabularModel:
    """Train on the earlier rows, stop early on the later rows' loss, keep the best weights;
    `progress` hears of the epochs (at most one line every 10 s, and the last)."""
    import torch

    torch.manual_seed(config.seed)
    torch.set_num_threads(config.num_threads)
    device = training_device(config.device)

    train, validation = split_by_time(frame, config.validation_fraction)
    vocabulary = CategoryVocabulary.fit(train, min_count=config.min_category_count)
    scaler = NumericScaler.fit(numeric_matrix(train))
    train_codes, train_numeric = _tensors(train, vocabulary, scaler, device)
    valid_codes, valid_numeric = _tensors(validation, vocabulary, scaler, device)
    train_labels = torch.as_tensor(label_vector(train), dtype=torch.float32, device=device)
    valid_labels = torch.as_tensor(label_vector(validation), dtype=torch.float32, device=device)

    network = build_network(vocabulary.cardinalities(), train_numeric.shape[1], config).to(device)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    generator = torch.Generator(device="cpu").manual_seed(config.seed)

    best_loss, best_epoch, best_state = float("inf"), 0, None
    epochs = Progress(progress, "torch training")
    began = time.perf_counter()
    for epoch in range(config.max_epochs):
        network.train()
        # drawn on the CPU generator (same order on any device), copied once per epoch
        order = torch.randperm(train.height, generator=generator).to(device)
        for batch in order.split(config.batch_size):
            optimizer.zero_grad()
            loss = loss_fn(network(train_codes[batch], train_numeric[batch]), train_labels[batch])
            loss.backward()
            optimizer.step()
        network.eval()
        with torch.no_grad():
            valid_loss = loss_fn(network(valid_codes, valid_numeric), valid_labels).item()
        if valid_loss < best_loss:
            best_loss, best_epoch = valid_loss, epoch
            best_state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
        stopping = epoch - best_epoch >= config.patience or epoch + 1 == config.max_epochs
        epochs.step(
            f"epoch {epoch + 1} of at most {config.max_epochs}, validation loss {valid_loss:.4f} "
            f"(best {best_loss:.4f} at epoch {best_epoch + 1}){'; stopping' if stopping else ''}",
            final=stopping,
        )
        if epoch - best_epoch >= config.patience:
            break
    seconds = time.perf_counter() - began

    network = network.cpu()
    network.load_state_dict(best_state)
    network.eval()
    metrics = {
        "validation_log_loss": best_loss,
        "best_epoch": float(best_epoch),
        "epochs_run": float(epoch + 1),
        "seconds_per_epoch": seconds / (epoch + 1),
        "trained_on_cuda": float(device.type == "cuda"),
    }
    return TorchTabularModel(network, vocabulary, scaler, config, metrics)
