"""A small training window through training, MLflow logging, evaluation, quality gate and promotion."""

import mlflow
import numpy as np

from ml_assets.models.baselines import fit_logistic_baseline, fit_rate_baseline
from ml_assets.models.dataset import model_input_frame, require_training_rows
from ml_assets.models.evaluation_report import build_evaluation_report
from ml_assets.models.lgbm import LgbmSearchConfig, train_lgbm
from ml_assets.models.metrics import evaluate
from ml_assets.models.quality import all_passed, run_quality_checks
from ml_assets.models.registry import CHALLENGER, CHAMPION, ModelRegistry, decide_promotion
from ml_assets.models.scoring import load_scoring_model
from ml_assets.models.torch_tabular import TorchTrainConfig, train_torch_tabular
from ml_assets.models.tracking import log_training_run


def train_log_and_register(model, registry, train, artifact_location, partition):
    logged = log_training_run(
        model,
        tracking_uri=registry.tracking_uri,
        experiment_name="flight_disruption",
        sample_frame=train.head(5),
        params={"partition": partition},
        metrics=model.validation_metrics,
        data_versions={"flight_features": 4},
        tags={"dagster_run_id": f"run-{partition}", "dagster_partition": partition},
        run_name=f"{model.KIND}-{partition}",
        artifact_location=artifact_location,
    )
    version = registry.register_version(logged.model_uri, logged.run_id)
    registry.set_challenger(version, f"trained on partition {partition}", f"run-{partition}")
    return logged, version


def test_small_window_trains_logs_evaluates_and_promotes(train_and_test, tracking_uri, artifact_location, tmp_path):
    train, test = train_and_test
    require_training_rows(train, min_rows=500)
    registry = ModelRegistry(tracking_uri, "flight_disruption")

    lgbm = train_lgbm(train, LgbmSearchConfig(n_trials=3, max_boost_rounds=150, early_stopping_rounds=15))
    logged, version = train_log_and_register(lgbm, registry, train, artifact_location, "2013-04-15")

    run = mlflow.get_run(logged.run_id)
    assert run.data.tags["dagster_run_id"] == "run-2013-04-15"
    assert run.data.params["data_version.flight_features"] == "4"
    assert run.data.metrics["validation_roc_auc"] > 0.6
    assert "carrier" in mlflow.artifacts.load_dict(f"runs:/{logged.run_id}/features.json")["features"]
    assert registry.version_for(CHALLENGER) == version

    # the registered artifact scores exactly like the in-memory model
    served = registry.load(CHALLENGER).predict(model_input_frame(test))
    np.testing.assert_allclose(served, lgbm.predict_proba(test), rtol=1e-12)

    evaluations = {
        "challenger": evaluate(test, lgbm.predict_proba(test)),
        "baseline_rate": evaluate(test, fit_rate_baseline(train).predict_proba(test)),
        "logistic": evaluate(test, fit_logistic_baseline(train).predict_proba(test)),
    }
    assert evaluations["challenger"].metrics["roc_auc"] > evaluations["baseline_rate"].metrics["roc_auc"] + 0.1
    quality = run_quality_checks(lgbm.predict_proba, test, min_auc=0.7)
    decision = decide_promotion(evaluations["challenger"].metrics, None, all_passed(quality), margin=0.005)
    assert decision.promote, (decision, quality)
    registry.promote(version, decision.reason, "run-2013-04-15")
    assert registry.version_for(CHAMPION) == version

    # next week: a torch challenger against the champion on the same evaluation data
    network = train_torch_tabular(train, TorchTrainConfig(max_epochs=20, patience=3, num_threads=1))
    _, torch_version = train_log_and_register(network, registry, train, artifact_location, "2013-04-22")
    torch_served = registry.load(torch_version).predict(model_input_frame(test))
    np.testing.assert_allclose(torch_served, network.predict_proba(test), atol=1e-6)
    # the one scoring path (batch, service, evaluation) reads the learners' own files: same scores
    native = {alias: load_scoring_model(registry, alias) for alias in (CHAMPION, CHALLENGER)}
    assert (native[CHAMPION].version, native[CHAMPION].kind) == (version, "lightgbm")
    assert (native[CHALLENGER].version, native[CHALLENGER].kind) == (torch_version, "torch_tabular")
    np.testing.assert_allclose(native[CHAMPION].predict_proba(test), lgbm.predict_proba(test), rtol=1e-12)
    np.testing.assert_allclose(native[CHALLENGER].predict_proba(test), torch_served, atol=1e-6)
    champion_scores = registry.load(CHAMPION).predict(model_input_frame(test))
    evaluations["champion"] = evaluate(test, champion_scores)
    evaluations["challenger"] = evaluate(test, torch_served)
    decision = decide_promotion(
        evaluations["challenger"].metrics,
        evaluations["champion"].metrics,
        all_passed(run_quality_checks(network.predict_proba, test, min_auc=0.7)),
        margin=0.05,
    )
    assert not decision.promote and "does not beat" in decision.reason
    assert registry.version_for(CHAMPION) == version

    report = build_evaluation_report(
        evaluations, tmp_path / "report", "Evaluation 2013-04-22", notes=(decision.reason,)
    )
    assert report.html_path.exists() and report.calibration_png.exists()
    assert decision.reason in report.markdown
