"""A live feed replayed from 2013: `ml-assets live-setup` prepares the live environment, `ml-assets
replay` drops one day after another into its landing zone, and the running `dagster dev` (its
sensors and automation) does the rest; `ml-assets replay --timeline` reads back what happened.

The live environment is the data folder, landing zone and Dagster instance given by
ML_ASSETS_DATA_DIR, ML_ASSETS_LANDING_DIR and DAGSTER_HOME (`make live` sets all three under
data/live), so the demo's lake, which already holds the whole year, is left alone.
"""

from __future__ import annotations

import json
import os
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from ml_assets.dates import days_between
from ml_assets.flights.contracts import DAILY_DATASETS, STATIC_DATASETS

YEAR_START = date(2013, 1, 1)
STATE_FILE = "live_setup.json"


def landing_dir() -> Path:
    landing = os.environ.get("ML_ASSETS_LANDING_DIR")
    if not landing:
        raise SystemExit("ML_ASSETS_LANDING_DIR is not set: run through `make live` / `make replay`, or set it")
    return Path(landing)


def state_path() -> Path:
    from ml_assets.settings import data_dir

    return data_dir() / STATE_FILE


def setup(until: date, weeks: int = 1) -> bool:
    """Bootstrap the live environment as if it had run until `until`: the data layers of
    2013-01-01..until (from the embedded data), the weekly models of the last `weeks` weeks that
    were evaluated by then (the first champion), the drift reference, and the last week's
    predictions and checks (the drift band's recent days). Idempotent: done once."""
    import dagster as dg

    from ml_assets.assets.training import DEFAULT_WINDOW_WEEKS
    from ml_assets.demo import model_summary, summary
    from ml_assets.resources.sources import EmbeddedNycflights13
    from ml_assets.runs import ensure_dagster_home, model_weeks, run_data_layers, run_in_order, run_weekly_models

    ensure_dagster_home()
    if state_path().exists():
        done = json.loads(state_path().read_text())
        print(f"live environment already set up until {done['until']} (remove {state_path()} to redo)")
        return True
    instance = dg.DagsterInstance.get()
    write_static_files(landing_dir())
    print(f"live setup: data layers {YEAR_START}..{until} from the embedded data ...", flush=True)
    results = run_data_layers(instance, YEAR_START, until, {"source": EmbeddedNycflights13()}, log_level="WARNING")
    print(summary(results))
    chosen = model_weeks(YEAR_START, until, weeks, DEFAULT_WINDOW_WEEKS)
    print(f"\nlive setup: weekly models of {', '.join(chosen)} (the first champion) ...", flush=True)
    results += (trained := run_weekly_models(instance, chosen, log_level="INFO"))  # the training's progress
    print(model_summary(trained))
    recent = days_between(until - timedelta(days=6), until)
    print(f"\nlive setup: drift reference, then predictions and checks of {recent[0]}..{recent[-1]} ...", flush=True)
    results.append(materialize_drift_reference(instance))
    results += run_in_order(instance, [("daily_monitoring", {"partition_key": str(day)}) for day in recent], log_level="WARNING")
    if not all(result.success for result in results):
        print("live setup FAILED: see the runs in the UI")
        return False
    state_path().write_text(json.dumps({"until": str(until), "weeks": chosen}))
    print(f"\nlive environment ready until {until}: `make live` serves it; `make replay` feeds it day by day.")
    return True


def materialize_drift_reference(instance):
    import dagster as dg

    from ml_assets.definitions import defs
    from ml_assets.resources import resources_for_env

    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    return dg.materialize([*defs.assets, *defs.asset_checks], selection="drift_reference", instance=instance,
                          resources=resources_for_env(), run_config=quiet, raise_on_error=False)  # fmt: skip


def write_static_files(landing: Path) -> None:
    from ml_assets.resources.sources import EmbeddedNycflights13

    landing.mkdir(parents=True, exist_ok=True)
    source = EmbeddedNycflights13()
    for dataset in STATIC_DATASETS:
        raw = source.read_table(dataset).drop("_source_file", "_source_row", "_malformed")
        _write_atomically(raw, landing / f"{dataset}.csv")


def _write_atomically(frame, path: Path) -> None:
    """Write next to the target, then rename: the sensor never sees half a file."""
    partial = path.with_name(path.name + ".part")
    frame.write_csv(partial)
    partial.replace(path)


def day_files(day: date, shifts: list) -> dict[str, object]:
    """The raw rows the feed delivers for `day` (embedded data, shifts applied), by dataset."""
    from ml_assets.flights.contracts import RAW_COLUMNS

    return {dataset: frame.select(RAW_COLUMNS[dataset]) for dataset, frame in _delivered(day, shifts).items()}


def _delivered(day: date, shifts: list) -> dict:
    """The day's source rows with their provenance, shifts applied, by dataset."""
    from ml_assets.monitoring.shifts import apply_shifts
    from ml_assets.resources.sources import EmbeddedNycflights13

    source = EmbeddedNycflights13()
    return {dataset: apply_shifts(source.read_days(dataset, day, day), dataset, shifts) for dataset in DAILY_DATASETS}


def post_day(serve_url: str, day: date, shifts: list) -> dict:
    """The day's events (schedule, departures, cancellations, weather) to a running service, in
    time order, from the same rows the landing zone gets, validated as the pipeline validates them."""
    from ml_assets.flights.schemas import TABLES
    from ml_assets.quality.validation import validate_rows
    from ml_assets.serving.events import day_events, post_events

    processed = {
        dataset: validate_rows(raw, TABLES[dataset].schema, TABLES[dataset].key, TABLES[dataset].derive, keep=["date"]).clean
        for dataset, raw in _delivered(day, shifts).items()
    }
    return post_events(serve_url, day_events(processed["flights"], processed["weather"]), os.environ.get("ML_ASSETS_API_TOKEN"))


def replay(start: date | None, days: int, seconds_per_day: float, shift_spec: str | None, shift_from: date | None,
           serve_url: str | None = None) -> list[dict]:  # fmt: skip
    """Drop each day's flights and weather into the landing zone, in order, `seconds_per_day`
    apart; from `shift_from` on with the shifts applied; with `serve_url`, also post the day's
    events to the online service. Returns what was dropped when."""
    from ml_assets.monitoring.shifts import parse_shifts

    if start is None:
        if not state_path().exists():
            raise SystemExit("the live environment is not set up: run `make live` (or `ml-assets live-setup`) first")
        start = date.fromisoformat(json.loads(state_path().read_text())["until"]) + timedelta(days=1)
    shifts = parse_shifts(shift_spec) if shift_spec else []
    shift_from = shift_from or start
    landing = landing_dir()
    dropped = []
    for number, day in enumerate(days_between(start, start + timedelta(days=days - 1))):
        if number:
            time.sleep(seconds_per_day)
        active = shifts if day >= shift_from else []
        files = day_files(day, active)
        for dataset, frame in files.items():
            (landing / dataset).mkdir(parents=True, exist_ok=True)
            _write_atomically(frame, landing / dataset / f"{day}.csv")
        served = f"; {post_day(serve_url, day, active)['applied']} events applied by the service" if serve_url else ""
        landed = datetime.now(timezone.utc)
        dropped.append({"day": day, "landed": landed, "shifts": [str(s) for s in active]})
        print(f"{landed:%H:%M:%S} landed {day}: {files['flights'].height} flights, {files['weather'].height} "
              f"weather rows{' shifted: ' + ', '.join(map(str, active)) if active else ''}"
              f"{served}", flush=True)  # fmt: skip
    return dropped


def timeline() -> str:
    """Per replayed day: when its files landed and, in seconds after that, when its features,
    predictions, drift checks and live performance were done (with their outcome); then the
    weekly models, retraining requests and promotion decisions the loop made on its own."""
    import dagster as dg

    from ml_assets.runs import ensure_dagster_home

    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    landed = _landing_times(landing_dir())
    checks = {name: _check_results(instance, asset, name) for asset, name in
              (("flight_features", "feature_drift"), ("batch_predictions", "score_drift"), ("live_performance", "performance_degradation"))}  # fmt: skip
    lines = [f"{'day':<11}{'landed':>9}{'features':>10}{'scored':>8}{'drift':>7}  {'feature drift':<40}{'score drift':<14}{'live ROC AUC (7d)':<18}"]
    for day, when in sorted(landed.items()):
        after = {asset: _materialized_at(instance, asset, day) for asset in ("flight_features", "batch_predictions", "live_performance")}
        drift_done = max((checks[n].get(str(day), {}).get("at") or 0 for n in ("feature_drift", "score_drift")), default=0)

        def seconds(at):
            return f"{at - when:+.0f}s" if at and at >= when else "-"

        def outcome(name):
            found = checks[name].get(str(day))
            return "-" if found is None else ("ok" if found["passed"] else f"{found['severity']} {found['detail']}")

        live = _live_metadata(instance, day)
        lines.append(
            f"{day!s:<11}{datetime.fromtimestamp(when):%H:%M:%S}{seconds(after['flight_features']):>10}"
            f"{seconds(after['batch_predictions']):>8}{seconds(drift_done):>7}  {outcome('feature_drift')[:39]:<40}"
            f"{outcome('score_drift')[:13]:<14}{live}"
        )
    lines += ["", "weekly models, retraining and promotion (in the order they ran):"]
    for run in sorted(instance.get_runs(dg.RunsFilter(job_name="retrain_models")) , key=lambda r: r.run_id):
        lines.append(f"  retraining requested for week {run.tags.get('dagster/partition')}: {run.tags.get('ml_assets/retrain_reason')} ({run.status.value})")
    for record in instance.fetch_materializations(dg.AssetKey("champion_promotion"), limit=50).records:
        metadata = record.asset_materialization.metadata
        at = datetime.fromtimestamp(record.timestamp)
        lines.append(f"  {at:%H:%M:%S} promotion gate of week {record.asset_materialization.partition}: {metadata['decision'].value}")
    return "\n".join(lines)


def _landing_times(landing: Path) -> dict[date, float]:
    times = {}
    for path in (landing / "flights").glob("*.csv"):
        day = date.fromisoformat(path.name[:10])
        times[day] = max(times.get(day, 0.0), path.stat().st_mtime)
    return times


def _materialized_at(instance, asset: str, day: date) -> float | None:
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[str(day)]), limit=1
    ).records
    return records[0].timestamp if records else None


def _live_metadata(instance, day: date) -> str:
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("live_performance"), asset_partitions=[str(day)]), limit=1
    ).records
    if not records:
        return "-"
    metadata = records[0].asset_materialization.metadata
    value = metadata.get("rolling_roc_auc")
    return f"{value.value:.3f}" if value and value.value is not None else "-"


def _check_results(instance, asset: str, name: str) -> dict[str, dict]:
    """The latest result of a partitioned check per partition."""
    import dagster as dg

    found = {}
    key = dg.AssetCheckKey(dg.AssetKey(asset), name)
    for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=1000):
        evaluation = record.evaluation
        if not isinstance(evaluation, dg.AssetCheckEvaluation) or record.partition in found:
            continue  # planned, or an older result
        drifted = evaluation.metadata.get("drifted_columns")
        found[record.partition] = {
            "at": record.event.timestamp,  # the evaluation itself, not when it was planned
            "passed": evaluation.passed,
            "severity": evaluation.severity.value,
            "detail": ", ".join(drifted.value) if drifted else "",
        }
    return found
