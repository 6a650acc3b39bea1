import numpy as np
import pytest

from ml_assets.models.dataset import label_vector
from ml_assets.models.evaluation_report import build_evaluation_report
from ml_assets.models.metrics import SLICE_COLUMNS, evaluate


@pytest.fixture(scope="module")
def evaluations(train_and_test):
    test = train_and_test[1]
    rng = np.random.default_rng(0)
    y = label_vector(test)
    return {
        "challenger": evaluate(test, np.clip(0.35 + 0.3 * (y - 0.35) + rng.normal(0, 0.15, y.size), 0.01, 0.99)),
        "champion": evaluate(test, np.clip(0.35 + rng.normal(0, 0.15, y.size), 0.01, 0.99)),
        "baseline_rate": evaluate(test, np.full(y.size, y.mean())),
    }


def test_report_has_a_metrics_table_per_model_and_links_its_files(evaluations, tmp_path):
    report = build_evaluation_report(evaluations, tmp_path / "week", "Evaluation 2013-W42", notes=("promoted",))
    lines = report.markdown.splitlines()
    assert lines[0] == "## Evaluation 2013-W42"
    assert "| model | roc_auc | pr_auc | brier | log_loss | ece | worst_slice_gap |" in lines
    challenger_row = next(line for line in lines if line.startswith("| challenger |"))
    assert f"{evaluations['challenger'].metrics['roc_auc']:.4f}" in challenger_row
    assert report.html_path.as_uri() in report.markdown
    assert report.calibration_png.read_bytes()[:4] == b"\x89PNG"
    html = report.html_path.read_text()
    assert "<img src='calibration.png'" in html and "baseline_rate" in html
    assert report.summary.height == 3
    assert report.slices_csv.read_text().splitlines()[0].startswith("slice,value,rows")


def test_report_shows_the_worst_slices_of_the_focus_model(evaluations, tmp_path):
    report = build_evaluation_report(evaluations, tmp_path, "t", focus_model="champion")
    worst = evaluations["champion"].worst_slices
    assert "**Worst slices (champion)**" in report.markdown
    assert worst.height == len(SLICE_COLUMNS)  # one row per slice column
    for value in worst["worst_value"]:
        assert f"| {value} |" in report.markdown
