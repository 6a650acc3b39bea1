"""`ml-assets bench monitoring`: drift checks on 2013 — their cost, false alarms and detection delay.

A champion (LightGBM) is trained on the 13 weeks before 2013-09-30 and its reference is built
from that window, exactly as `drift_reference` does. Then, day by day in order:
- the un-injected days 2013-10-01..12-31 go through both drift checks (features and scores): the
  days on which either fails (WARN or ERROR: both alert) are false alarms (target: at most 1 day
  in 30); the ERROR days (which also request retraining) are counted apart;
- for three injected shifts (weather: visibility x 0.3; a delay surge: departure and arrival
  delays + 45 min; a schedule change: every departure 3 h later), each started on three days,
  the raw rows are shifted from that day on and go through validation and the feature code
  again: the delay is the days from the shift to the first failed check (target: 0, the first
  day), and to the first ERROR.
It also times one day's check against the stored reference and against recomputing the
reference (target: under 2 s), and Evidently's HTML report.
"""

from __future__ import annotations

import statistics
import time
from datetime import date, timedelta

import polars as pl

from ml_assets.dates import days_between

WINDOW = (date(2013, 7, 1), date(2013, 9, 29))  # the training window of the week of 2013-09-30
MONITORED = (date(2013, 10, 1), date(2013, 12, 31))
SHIFTS = {
    "weather (visibility x 0.3)": "visib*0.3",
    "delay surge (+45 min)": "dep_delay+45,arr_delay+45",
    "schedule change (+3 h)": "schedule+180",
}
SHIFT_STARTS = (date(2013, 10, 10), date(2013, 11, 14), date(2013, 12, 5))
FOLLOW_DAYS = 4  # days checked from a shift's start
MAX_FALSE_ALARM_RATE = 1 / 30
TARGET_CHECK_SECONDS = 2.0


class DailyMonitor:
    """Both drift checks of consecutive days against one reference, keeping each check's earlier
    scores as the stored tables would (the seasonal band)."""

    def __init__(self, reference, recent: dict[str, pl.DataFrame] | None = None):
        self.reference = reference
        self.recent = dict(recent or {"features": pl.DataFrame(), "score": pl.DataFrame()})

    def check(self, day: date, features: pl.DataFrame, scores: pl.DataFrame) -> dict:
        from ml_assets.monitoring.drift import check_day, feature_severity, recent_days, score_severity
        from ml_assets.monitoring.reference import MONITORED_FEATURES, SCORE

        result = {"date": day}
        for name, current, columns, severity_of in (
            ("features", features, MONITORED_FEATURES, feature_severity),
            ("score", scores, [SCORE], score_severity),
        ):
            earlier = self.recent[name]
            window = earlier.filter(pl.col("date").is_between(*recent_days(day))) if earlier.height else earlier
            began = time.perf_counter()
            judged, severity = check_day(self.reference, current, columns, window if window.height else _no_scores(), severity_of)
            result[f"{name}_seconds"] = time.perf_counter() - began
            result[name] = severity
            result[f"{name}_drifted"] = judged.filter(pl.col("drifted")).get_column("column").to_list()
            scored = judged.select(pl.lit(day).alias("date"), "column", "value")
            self.recent[name] = pl.concat([earlier, scored]) if earlier.height else scored
        result["error"] = "ERROR" in (result["features"], result["score"])
        result["alarm"] = result["features"] is not None or result["score"] is not None
        return result


def _no_scores() -> pl.DataFrame:
    return pl.DataFrame(schema={"date": pl.Date, "column": pl.String, "value": pl.Float64})


def shifted_features(spec: str, start: date, end: date, planes: pl.DataFrame) -> pl.DataFrame:
    """flight_features of start..end from the embedded raw rows with `spec` applied from `start`
    on, through the same validation and feature code as the pipeline."""
    import holidays

    from ml_assets.flights.features import FLIGHT_DAYS_BEFORE, WEATHER_DAYS_BEFORE, build_flight_features
    from ml_assets.flights.schemas import TABLES
    from ml_assets.monitoring.shifts import apply_shifts, parse_shifts
    from ml_assets.quality.validation import validate_rows
    from ml_assets.resources.sources import EmbeddedNycflights13

    shifts, source = parse_shifts(spec), EmbeddedNycflights13()

    def processed(dataset: str, days_before: int) -> pl.DataFrame:
        raw = source.read_days(dataset, start - timedelta(days=days_before), end)
        raw = pl.concat([raw.filter(pl.col("date") < start), apply_shifts(raw.filter(pl.col("date") >= start), dataset, shifts)])
        rules = TABLES[dataset]
        return validate_rows(raw, rules.schema, rules.key, rules.derive, keep=["date"]).clean

    public_holidays = sorted(holidays.US(years=range(start.year - 1, end.year + 2)))
    return build_flight_features(
        processed("flights", FLIGHT_DAYS_BEFORE), processed("weather", WEATHER_DAYS_BEFORE), planes, public_holidays, start, end
    )


def run(n_trials: int = 5) -> dict:
    from ml_assets.bench.model_quality import load_year
    from ml_assets.models.lgbm import LgbmSearchConfig, train_lgbm
    from ml_assets.models.scoring import ScoringModel
    from ml_assets.monitoring.drift import check_day, feature_severity, write_html_report
    from ml_assets.monitoring.reference import CATEGORICAL, MONITORED_FEATURES, SCORE, build_reference
    from ml_assets.resources import resources_for_env

    began = time.perf_counter()
    import evidently  # noqa: F401  (timed apart: a process pays it once)

    import_seconds = time.perf_counter() - began
    storage = resources_for_env()["storage"]
    year, _ = load_year(storage)
    window = year.filter(pl.col("date").is_between(*WINDOW))
    print(f"champion: LightGBM ({n_trials} trials) on {WINDOW[0]}..{WINDOW[1]}, {window.height} rows ...", flush=True)
    learner = train_lgbm(window, LgbmSearchConfig(n_trials=n_trials))
    champion = ScoringModel("bench", "bench", learner.KIND, learner)
    began = time.perf_counter()
    reference = build_reference(window, champion)
    reference_seconds = time.perf_counter() - began
    print(f"reference built in {reference_seconds:.1f} s; checking {MONITORED[0]}..{MONITORED[1]} ...", flush=True)

    def scores_of(features: pl.DataFrame) -> pl.DataFrame:
        return features.select("date").with_columns(pl.Series(SCORE, champion.predict_proba(features)))

    natural = DailyMonitor(reference)
    history: dict[date, dict] = {}
    days = days_between(*MONITORED)
    for day in days:
        current = year.filter(pl.col("date") == day)
        history[day] = natural.check(day, current, scores_of(current))
        history[day]["recent"] = {name: frame for name, frame in natural.recent.items()}
    alarms = [d for d in days if history[d]["alarm"]]
    errors = [d for d in days if history[d]["error"]]

    planes = storage.scan("processed/planes").collect()
    detections = {}
    for name, spec in SHIFTS.items():
        for start in SHIFT_STARTS:
            shifted = shifted_features(spec, start, start + timedelta(days=FOLLOW_DAYS - 1), planes)
            monitor = DailyMonitor(reference, history[start - timedelta(days=1)]["recent"])
            found = {"delay_days": None, "error_delay_days": None, "severity": None, "drifted": []}
            for offset, day in enumerate(days_between(start, start + timedelta(days=FOLLOW_DAYS - 1))):
                current = shifted.filter(pl.col("date") == day)
                result = monitor.check(day, current, scores_of(current))
                if result["alarm"] and found["delay_days"] is None:
                    found |= {"delay_days": offset, "drifted": result["features_drifted"] + result["score_drifted"],
                              "severity": "ERROR" if result["error"] else "WARN"}  # fmt: skip
                if result["error"]:
                    found["error_delay_days"] = offset
                    break
            detections[f"{name} from {start}"] = found
            print(f"  {name} from {start}: {found}", flush=True)

    check_seconds = [history[d]["features_seconds"] + history[d]["score_seconds"] for d in days]
    current = year.filter(pl.col("date") == days[-10])
    judged, _ = check_day(reference, current, MONITORED_FEATURES, _no_scores(), feature_severity)
    began = time.perf_counter()
    write_html_report(reference.rows, current, judged, CATEGORICAL, storage_dir() / "bench_feature_drift.html")
    html_seconds = time.perf_counter() - began

    figures = {
        "check_seconds_median": statistics.median(check_seconds),
        "check_seconds_p90": sorted(check_seconds)[int(0.9 * len(check_seconds))],
        "recompute_reference_seconds": reference_seconds,
        "check_with_recomputed_reference_seconds": reference_seconds + statistics.median(check_seconds),
        "html_report_seconds": html_seconds,
        "evidently_import_seconds": import_seconds,
        "monitored_days": len(days),
        "false_alarm_days": [str(d) for d in alarms],
        "false_alarm_rate": len(alarms) / len(days),
        "false_alarm_drifted": {
            str(d): {"severity": "ERROR" if history[d]["error"] else "WARN",
                     "drifted": history[d]["features_drifted"] + history[d]["score_drifted"]}
            for d in alarms
        },  # fmt: skip
        "false_error_days": [str(d) for d in errors],
        "detections": detections,
        "targets": {
            "check_seconds": TARGET_CHECK_SECONDS,
            "max_false_alarm_rate": MAX_FALSE_ALARM_RATE,
            "detection_delay_days": 0,
        },
    }
    print(report(figures))
    return figures


def storage_dir():
    from ml_assets.settings import data_dir

    folder = data_dir() / "reports" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def report(f: dict) -> str:
    lines = [
        "",
        f"drift check, one day against the stored reference: median {f['check_seconds_median']:.2f} s "
        f"(p90 {f['check_seconds_p90']:.2f} s; target < {TARGET_CHECK_SECONDS} s)",
        f"  recomputing the reference instead: {f['check_with_recomputed_reference_seconds']:.1f} s "
        f"({f['check_with_recomputed_reference_seconds'] / f['check_seconds_median']:.0f}x)",
        f"  Evidently's HTML report of the day: {f['html_report_seconds']:.2f} s; `import evidently` (once per process): {f['evidently_import_seconds']:.1f} s",
        f"false alarms (a drift check failed on an un-injected day): {len(f['false_alarm_days'])} of "
        f"{f['monitored_days']} days = {f['false_alarm_rate']:.1%} (target <= {MAX_FALSE_ALARM_RATE:.1%}); "
        f"of them ERROR (retraining): {len(f['false_error_days'])}",
        *(f"  {day}: {found['severity']} {', '.join(found['drifted'])}" for day, found in f["false_alarm_drifted"].items()),
        f"detection delay in days from the shift's first day (target 0), within {FOLLOW_DAYS} days:",
        f"  {'shift':<45} {'failed':>7} {'ERROR':>7}  drifted on detection",
    ]
    for name, found in f["detections"].items():
        delay, error = found["delay_days"], found["error_delay_days"]
        lines.append(f"  {name:<45} {'-' if delay is None else delay:>7} {'-' if error is None else error:>7}  "
                     f"{found['severity'] or ''} {', '.join(found['drifted'])}")  # fmt: skip
    return "\n".join(lines)
