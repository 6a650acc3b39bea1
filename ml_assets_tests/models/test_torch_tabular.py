import time

import numpy as np
import pytest
import torch

from ml_assets.models.dataset import label_vector
from ml_assets.models.metrics import log_loss, roc_auc
from ml_assets.models.torch_tabular import TorchTabularModel, TorchTrainConfig, train_torch_tabular, training_device


@pytest.fixture(scope="module")
def timed_training(train_and_test) -> tuple[TorchTabularModel, float]:
    """The model and the wall-clock seconds its training took."""
    began = time.perf_counter()
    model = train_torch_tabular(train_and_test[0], TorchTrainConfig(max_epochs=30, patience=4, num_threads=1))
    return model, time.perf_counter() - began


@pytest.fixture(scope="module")
def torch_model(timed_training) -> TorchTabularModel:
    return timed_training[0]


def test_torch_beats_a_constant_predictor_out_of_time(torch_model, train_and_test):
    train, test = train_and_test
    y = label_vector(test)
    probabilities = torch_model.predict_proba(test)
    constant = np.full(test.height, label_vector(train).mean())
    assert roc_auc(y, probabilities) > 0.72
    assert log_loss(y, probabilities) < log_loss(y, constant) - 0.03
    assert torch_model.validation_metrics["best_epoch"] < 30


def test_torch_training_is_seeded(torch_model, train_and_test):
    train, test = train_and_test
    again = train_torch_tabular(train, TorchTrainConfig(max_epochs=30, patience=4, num_threads=1))
    np.testing.assert_allclose(again.predict_proba(test), torch_model.predict_proba(test), atol=1e-6)


def test_save_and_load_reproduce_the_predictions(torch_model, train_and_test, tmp_path):
    test = train_and_test[1]
    torch_model.save(tmp_path / "model")
    loaded = TorchTabularModel.load(tmp_path / "model")
    np.testing.assert_allclose(loaded.predict_proba(test), torch_model.predict_proba(test), atol=1e-7)


def test_training_reports_its_epochs_and_pace(timed_training):
    model, seconds = timed_training
    metrics = model.validation_metrics
    assert metrics["best_epoch"] < metrics["epochs_run"] <= 30
    # seconds per epoch, not in total or in milliseconds: the epochs fit in the training's wall time
    assert 0 < metrics["seconds_per_epoch"] * metrics["epochs_run"] <= seconds


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
)
def test_training_reports_the_device_it_trained_on(train_and_test, device):
    model = train_torch_tabular(train_and_test[0], TorchTrainConfig(max_epochs=1, num_threads=1, device=device))
    assert model.validation_metrics["trained_on_cuda"] == {"cpu": 0.0, "cuda": 1.0}[device]


def test_an_unknown_device_is_a_clear_error_and_cpu_is_always_there():
    with pytest.raises(ValueError, match="'auto', 'cuda' or 'cpu'"):
        training_device("tpu")
    assert training_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no CUDA device"):
        training_device("cuda")
    assert training_device("auto").type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA here")
def test_auto_picks_cuda_when_present():
    assert training_device("auto").type == training_device("cuda").type == "cuda"


def test_training_reports_its_epochs_without_a_flood(train_and_test):
    lines = []
    train_torch_tabular(train_and_test[0], TorchTrainConfig(max_epochs=4, patience=10, num_threads=1), progress=lines.append)
    assert lines[-1].startswith("torch training: epoch 4 of at most 4, validation loss ") and "; stopping" in lines[-1]
    assert len(lines) <= 4 and all(line.endswith(" s elapsed") for line in lines)


def test_progress_reports_at_most_one_line_every_interval_and_always_the_last():
    from ml_assets.models.progress import Progress

    now, lines = [0.0], []
    progress = Progress(lines.append, "search", every_s=10, clock=lambda: now[0])
    for second in (1, 5, 12, 15, 23, 24):
        now[0] = second
        progress.step(f"at {second}", final=second == 24)
    assert lines == ["search: at 1, 1 s elapsed", "search: at 12, 12 s elapsed", "search: at 23, 23 s elapsed", "search: at 24, 24 s elapsed"]
