"""`ml-assets demo`: materialize every layer on the embedded data into the local instance: the data
layers for the day range, then the weekly models (train, evaluate, promote) for its last weeks."""

import os
import time
from datetime import date

import dagster as dg

from ml_assets.runs import ensure_dagster_home, model_weeks, run_data_layers, run_ranges, run_weekly_models
from ml_assets.settings import PARTITIONS_PER_RUN, data_dir


def run_demo(start: date, end: date, weeks: int = 2) -> bool:
    home = ensure_dagster_home()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per download
    from ml_assets.definitions import data_assets

    instance = dg.DagsterInstance.get()
    days = (end - start).days + 1
    ranges = len(run_ranges(start, end, PARTITIONS_PER_RUN))
    print(f"Dagster instance: {home}")
    print(f"Data lake:        {data_dir() / 'lake'}")
    print(f"Materializing {len(data_assets)} assets (raw → processed → features) for {days} days, "
          f"{start}..{end}: dimensions, then {'one run' if ranges == 1 else f'{ranges} runs'} "
          "for the day range ...", flush=True)  # fmt: skip
    began = time.perf_counter()
    results = run_data_layers(instance, start, end)
    print(summary(results))
    succeeded = all(r.success for r in results)
    if succeeded and weeks:
        from ml_assets.assets.training import DEFAULT_WINDOW_WEEKS

        chosen = model_weeks(start, end, weeks, DEFAULT_WINDOW_WEEKS)
        print(f"\nWeekly models (train, evaluate, promote) for the weeks of {', '.join(chosen) or 'none'}: "
              f"each trains on the {DEFAULT_WINDOW_WEEKS} weeks before it ...", flush=True)  # fmt: skip
        model_results = run_weekly_models(instance, chosen)
        print(model_summary(model_results))
        results += model_results
        succeeded = all(r.success for r in model_results)
    elapsed = time.perf_counter() - began
    runs = ", ".join(r.run_id for r in results)
    print(f"\nRuns {runs} {'succeeded' if succeeded else 'FAILED'} in {elapsed:.1f} s.")
    print("Open the UI with `make dev` (http://127.0.0.1:3000) to see lineage, partitions, checks and the "
          "evaluation reports.")  # fmt: skip
    return succeeded


def model_summary(results: list[dg.ExecuteInProcessResult]) -> str:
    """One line per week: the challenger, its out-of-time ROC AUC, the promotion decision."""
    lines = [f"\n{'week':<12}{'challenger':>11}{'ROC AUC':>9}  decision"]
    for result in results:
        metadata = {
            e.materialization.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
        evaluation, promotion = metadata.get("model_evaluation", {}), metadata.get("champion_promotion", {})
        auc = evaluation.get("challenger_roc_auc")
        decision = promotion.get("decision")
        lines.append(
            f"{result.dagster_run.tags.get('dagster/partition', ''):<12}"
            f"{'v' + evaluation['challenger_version'].value if evaluation else '-':>11}"
            f"{f'{auc.value:.4f}' if auc else '-':>9}  "
            f"{decision.value if decision else 'not reached (see the run in the UI)'}"
        )
    return "\n".join(lines)


def summary(results: list[dg.ExecuteInProcessResult]) -> str:
    """One line per asset: rows, quarantined rows, data version, check outcomes (a check of each
    day: `ok`, or how many days failed and with which severity)."""
    outcomes: dict[str, dict[str, list]] = {}
    for evaluation in [e for r in results for e in r.get_asset_check_evaluations()]:
        by_check = outcomes.setdefault(evaluation.asset_key.to_user_string(), {})
        by_check.setdefault(evaluation.check_name, []).append(evaluation)
    checks = {
        asset: [f"{name}:{_outcome(evaluations)}" for name, evaluations in by_check.items()]
        for asset, by_check in outcomes.items()
    }
    lines = [f"\n{'asset':<18}{'rows':>10}{'quarantined':>13}  {'data version':<32}checks"]
    for event in [e for r in results for e in r.get_asset_materialization_events()]:
        materialization = event.materialization
        key = materialization.asset_key.to_user_string()
        if any(line.startswith(f"{key} ") for line in lines):
            continue  # one line per asset, not per partition
        metadata = materialization.metadata
        rows = metadata.get("dagster/row_count")
        quarantined = metadata.get("quarantined_rows")
        version = materialization.tags.get("dagster/data_version", "")
        lines.append(
            f"{key:<18}{rows.value if rows else '':>10}"
            f"{quarantined.value if quarantined else '':>13}  {version:<32}"
            f"{' '.join(checks.get(key, []))}"
        )
    return "\n".join(lines)


def _outcome(evaluations: list) -> str:
    failed = [e for e in evaluations if not e.passed]
    if not failed:
        return "ok"
    severity = failed[0].severity.value.lower()
    return severity if len(evaluations) == 1 else f"{severity} on {len(failed)} of {len(evaluations)} days"
