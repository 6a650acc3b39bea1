"""`ml-assets rollout ...` on the local registry of the data folder."""

import json
import shutil

import pytest

from ml_assets.cli import main
from ml_assets.models.registry import ModelRegistry


@pytest.fixture
def local_registry(registry_template, tmp_path, monkeypatch) -> ModelRegistry:
    (tmp_path / "mlflow").mkdir()
    shutil.copy(registry_template / "mlflow.db", tmp_path / "mlflow" / "mlflow.db")
    monkeypatch.setenv("ML_ASSETS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ML_ASSETS_ENV", raising=False)
    return ModelRegistry(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}", "flight_disruption")


def test_canary_status_abort_and_promote(local_registry, capsys):
    assert main(["rollout", "canary", "--percent", "20", "--reason", "first look"]) == 0
    assert "canary rollout of v2 at 20 % against champion v1" in capsys.readouterr().out
    assert main(["rollout", "status"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "canary"
    assert main(["rollout", "abort", "--reason", "enough"]) == 0
    assert "aborted; all traffic on the champion" in capsys.readouterr().out
    assert main(["rollout", "shadow", "--reason", "watch it"]) == 0
    assert main(["rollout", "promote", "--reason", "held up"]) == 0
    assert "champion v1 -> v2; rollout ended" in capsys.readouterr().out

    actions = [m.action for m in local_registry.alias_log()]
    assert actions[-4:] == ["rollout_canary", "rollout_abort", "rollout_shadow", "promote"]
    assert all("ml-assets rollout" in m.moved_by for m in local_registry.alias_log()[-4:])
    assert [m.reason for m in local_registry.alias_log()[-4:]] == ["20 %: first look", "enough", "100 %: watch it", "held up"]


def test_refusals_say_why(local_registry, capsys):
    assert main(["rollout", "canary", "--reason", "no share"]) == 1
    assert "a canary needs --percent" in capsys.readouterr().err
    assert main(["rollout", "abort"]) == 2
    assert "--reason is required" in capsys.readouterr().err
    assert main(["rollout", "promote", "--reason", "nothing running"]) == 1
    assert "refused: flight_disruption has no rollout in progress to promote" in capsys.readouterr().err
