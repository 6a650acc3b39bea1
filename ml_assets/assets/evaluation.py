"""Evaluation layer (weekly): `model_evaluation` with blocking quality checks, `champion_promotion`.

A week's candidates (the versions `lgbm_model` and `torch_model` registered for it) are scored out
of time on the week's own days, the days right after their training window, next to the current
champion and the baselines fitted on the same window. The best candidate becomes the `challenger`
and goes through the model-quality checks; they block `champion_promotion`, which moves the
`champion` alias only when the challenger also beats the champion by the configured margin.
"""

import dagster as dg
import polars as pl
from pydantic import Field

from ml_assets.assets.common import data_version, day_range
from ml_assets.assets.training import load_training_window
from ml_assets.assets.weekly import WEEK_COLUMN, WEEKLY, read_days_pinned, read_week_rows
from ml_assets.flights.feature_spec import FEATURES_TABLE
from ml_assets.resources.mlflow import MlflowTracking
from ml_assets.resources.storage import DeltaStorage
from ml_assets.settings import data_dir

EVALUATIONS = "evaluation/model_evaluations"
# pragma: no mutate start (the checks' descriptions: wording)
QUALITY_CHECKS = {
    "invariance_to_identifiers": "Scores do not move when identifiers are reformatted or labels change.",
    "lower_visibility_raises_risk": "Cutting visibility at the origin raises the mean predicted risk.",
    "recent_origin_delays_raise_risk": "Longer recent departure delays at the origin raise the risk.",
    "minimum_roc_auc": "The challenger's out-of-time ROC AUC reaches the configured minimum.",
}
# pragma: no mutate end


class EvaluationConfig(dg.Config):
    min_roc_auc: float = Field(0.65, description="Minimum out-of-time ROC AUC of the challenger.")
    min_slice_rows: int = Field(30, description="Slices with fewer rows are not scored.")
    min_rows: int = Field(500, description="Fewer evaluation rows fail the partition.")


@dg.asset(
    group_name="evaluation",
    deps=[
        "training_set", "lgbm_model", "torch_model",
        dg.AssetDep("flight_features", partition_mapping=dg.TimeWindowPartitionMapping()),  # the week's days
    ],  # fmt: skip
    kinds={"mlflow", "deltalake"},
    code_version="1",
    check_specs=[
        dg.AssetCheckSpec(name, asset="model_evaluation", blocking=True, description=text)
        for name, text in QUALITY_CHECKS.items()
    ],
    description=(
        "Out-of-time evaluation on the week after the training window: the week's candidates, the "
        "champion and the baselines (historical rate, logistic regression) on the same days; "
        "metrics, calibration, slices with the worst-slice gap; report files linked."
    ),
    **WEEKLY,
)
def model_evaluation(
    context: dg.AssetExecutionContext, config: EvaluationConfig, storage: DeltaStorage, mlflow: MlflowTracking
):
    from ml_assets.models.comparison import compare_models, registered_name
    from ml_assets.models.evaluation_report import build_evaluation_report
    from ml_assets.models.quality import all_passed, run_quality_checks
    from ml_assets.models.registry import CHALLENGER, CHAMPION
    from ml_assets.models.scoring import load_scoring_model

    week = context.partition_key
    registry = mlflow.registry()
    latest_by_kind = {tags["model_kind"]: v for v, tags in registry.versions_tagged(dagster_partition=week).items()}
    if not latest_by_kind:
        raise dg.Failure(f"no model version is registered for week {week}: materialize lgbm_model or torch_model")
    first, last = day_range(context)
    test, features_version = read_days_pinned(storage, FEATURES_TABLE, first, last)
    if test.height < config.min_rows:
        raise dg.Failure(f"week {week} ({first}..{last}) has {test.height} evaluation rows, fewer than {config.min_rows}")
    train, trained_on = load_training_window(storage, week)

    # scored through the same loading path as batch predictions and the online service
    candidates = {
        registered_name(kind, v): load_scoring_model(registry, v).predict_proba for kind, v in latest_by_kind.items()
    }
    champion_version = registry.version_for(CHAMPION)
    champion = (
        (registered_name("champion", champion_version), load_scoring_model(registry, champion_version).predict_proba)
        if champion_version
        else None
    )
    comparison = compare_models(test, train, candidates, champion, config.min_slice_rows)
    challenger_version = comparison.challenger_version
    if registry.version_for(CHALLENGER) != challenger_version:
        registry.set_challenger(
            challenger_version, f"best candidate of week {week} on {first}..{last}", context.run.run_id,
            moved_by="dagster asset model_evaluation",
        )  # fmt: skip

    quality = run_quality_checks(candidates[comparison.challenger], test, config.min_roc_auc)
    passed = all_passed(quality)
    report = build_evaluation_report(
        comparison.evaluations,
        data_dir() / "reports" / "model_evaluation" / week,
        f"Model evaluation, week {week} (out of time: {first}..{last})",
        focus_model=comparison.challenger,
        notes=(
            f"Challenger: {comparison.challenger}; champion: {f'v{champion_version}' if champion_version else 'none yet'}; "
            f"quality checks {'passed' if passed else 'FAILED'}.",
        ),
    )
    challenger_run = registry.client.get_model_version(registry.model_name, challenger_version).run_id
    registry.client.log_artifacts(challenger_run, str(report.html_path.parent), f"evaluation/{week}")

    rows = comparison.summary_rows(passed).with_columns(pl.lit(features_version).alias("features_version"))
    version = storage.write_key(EVALUATIONS, rows, WEEK_COLUMN, week)
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(report.markdown),
            "report_html": dg.MetadataValue.url(report.html_path.as_uri()),
            "calibration_plot": dg.MetadataValue.url(report.calibration_png.as_uri()),
            "challenger_version": challenger_version,
            "champion_version": champion_version or "none",
            "challenger_roc_auc": comparison.evaluations[comparison.challenger].metrics["roc_auc"],
            "worst_slice_gap": comparison.evaluations[comparison.challenger].worst_slice_gap,
            "evaluation_rows": test.height,
            "evaluated_on": dg.MetadataValue.json({FEATURES_TABLE: features_version}),
            "baselines_trained_on": dg.MetadataValue.json(trained_on),
        },
        check_results=[
            dg.AssetCheckResult(check_name=result.name, passed=result.passed, metadata=result.details)
            for result in quality
        ],
        data_version=data_version(EVALUATIONS, version),
    )


class PromotionConfig(dg.Config):
    margin: float = Field(0.005, description="ROC AUC the challenger must gain over the champion.")


@dg.asset(
    group_name="evaluation",
    deps=["model_evaluation"],
    kinds={"mlflow"},
    code_version="1",
    description=(
        "The promotion gate: moves the `champion` alias to the week's challenger when it passed the "
        "blocking quality checks and beats the champion by the margin on the same evaluation days."
    ),
    **WEEKLY,
)
def champion_promotion(
    context: dg.AssetExecutionContext, config: PromotionConfig, storage: DeltaStorage, mlflow: MlflowTracking
):
    from ml_assets.models.metrics import METRIC_NAMES
    from ml_assets.models.registry import CHAMPION, decide_promotion

    week = context.partition_key
    rows = read_week_rows(storage, EVALUATIONS, week, "model_evaluation")
    by_role = {row["role"]: row for row in rows.iter_rows(named=True)}
    challenger, champion = by_role["challenger"], by_role.get("champion")
    registry = mlflow.registry()
    current = registry.version_for(CHAMPION)
    evaluated = champion["model_version"] if champion else None
    if current != evaluated:
        raise dg.Failure(
            f"the champion is v{current} but week {week} was evaluated against "
            f"{f'v{evaluated}' if evaluated else 'no champion'}: re-run model_evaluation for {week}"
        )
    decision = decide_promotion(
        {m: challenger[m] for m in METRIC_NAMES},
        {m: champion[m] for m in METRIC_NAMES} if champion else None,
        challenger["quality_passed"],
        config.margin,
    )
    if decision.promote:
        registry.promote(
            challenger["model_version"], f"week {week}: {decision.reason}", context.run.run_id,
            moved_by="dagster asset champion_promotion",
        )  # fmt: skip
    champion_now = registry.version_for(CHAMPION)
    return dg.MaterializeResult(
        metadata={
            "promoted": decision.promote,
            "decision": decision.reason,
            "challenger_version": challenger["model_version"],
            "champion_version": champion_now or "none",
        },
        data_version=dg.DataVersion(f"{registry.model_name}@champion=v{champion_now}"),
    )


evaluation_assets = [model_evaluation, champion_promotion]
