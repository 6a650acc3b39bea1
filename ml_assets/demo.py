"""`ml-assets demo`: materialize every layer on the embedded data into the local instance."""

import time
from datetime import date

import dagster as dg

from ml_assets.runs import ensure_dagster_home, run_data_layers
from ml_assets.settings import data_dir


def run_demo(start: date, end: date) -> bool:
    home = ensure_dagster_home()
    from ml_assets.definitions import data_assets

    instance = dg.DagsterInstance.get()
    days = (end - start).days + 1
    print(f"Dagster instance: {home}")
    print(f"Data lake:        {data_dir() / 'lake'}")
    print(f"Materializing {len(data_assets)} assets (raw → processed → features) for {days} days, "
          f"{start}..{end}: dimensions, then one run for the day range ...", flush=True)  # fmt: skip
    began = time.perf_counter()
    results = run_data_layers(instance, start, end)
    elapsed = time.perf_counter() - began
    print(summary(results))
    succeeded = all(r.success for r in results)
    runs = ", ".join(r.run_id for r in results)
    print(f"\nRuns {runs} {'succeeded' if succeeded else 'FAILED'} in {elapsed:.1f} s.")
    print("Open the UI with `make dev` (http://127.0.0.1:3000) to see lineage, partitions and checks.")
    return succeeded


def summary(results: list[dg.ExecuteInProcessResult]) -> str:
    """One line per asset: rows, quarantined rows, data version, check outcomes."""
    checks: dict[str, list[str]] = {}
    evaluations = [e for r in results for e in r.get_asset_check_evaluations()]
    for evaluation in evaluations:
        mark = "ok" if evaluation.passed else f"{evaluation.severity.value.lower()}"
        checks.setdefault(evaluation.asset_key.to_user_string(), []).append(
            f"{evaluation.check_name}:{mark}"
        )
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
