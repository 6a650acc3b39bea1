"""Declarative automation, evaluated tick by tick against an instance holding 2013 partitions: the
chain follows data, never the clock (these partitions are years old for the 2026 clock)."""

from datetime import date, timedelta

import dagster as dg
import pytest

from ml_assets.definitions import defs
from ml_assets_tests.helpers import record_run

DAYS = [date(2013, 9, 1) + timedelta(days=n) for n in range(70)]  # present: Sep 1 .. Nov 9
DAILY_INPUTS = ["raw_flights", "raw_weather", "flights", "weather", "flight_features"]
GATES = ["schema_conforms", "key_unique", "quarantine_rate", "null_rates", "rows_per_day"]
QUALITY_CHECKS = ["invariance_to_identifiers", "lower_visibility_raises_risk", "recent_origin_delays_raise_risk", "minimum_roc_auc"]


class Ticks:
    """An instance and the automation cursor, one evaluation per `tick()`."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance, self.cursor = instance, None

    def tick(self) -> dict[str, set[str]]:
        result = dg.evaluate_automation_conditions(defs=defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        requested = {}
        for evaluated in result.results:
            if evaluated.true_subset.is_empty:
                continue
            key = evaluated.key
            name = f"{key.asset_key.to_user_string()}:{key.name}" if isinstance(key, dg.AssetCheckKey) else key.to_user_string()
            requested[name] = set(evaluated.true_subset.expensively_compute_partition_keys())
        return requested

    def run(self, assets: list[str], days: list[date | None], passing: dict | None = None, failing: dict | None = None):
        record_run(self.instance, assets, days, passing, failing)

    def materialize(self, asset: str, *days: date) -> None:
        self.run([asset], list(days))

    def land(self, *days: date, short: bool = False) -> None:
        """What the landing-zone sensor's run does for its days: the daily data layers with their
        quality gates (a short delivery fails `rows_per_day` and stops before the features)."""
        gates = {"flights": GATES, "weather": GATES}
        if short:
            self.run(DAILY_INPUTS[:-1], list(days), {"flights": GATES[:-1], "weather": GATES}, {"flights": ["rows_per_day"]})
        else:
            self.run(DAILY_INPUTS, list(days), gates | {"flight_features": ["flight_id_unique", "label_rate_plausible"]})


def keys(*days: date) -> set[str]:
    return {day.isoformat() for day in days}


@pytest.fixture
def ticks(dagster_instance) -> Ticks:
    """Oct 1 .. Nov 9 of the data layers present (with the dimensions), first tick evaluated."""
    ticks = Ticks(dagster_instance)
    ticks.run(["raw_planes", "planes"], [None], {"planes": GATES[:-1]})  # the dimensions job
    ticks.land(*DAYS)
    ticks.tick()
    return ticks


def test_nothing_runs_on_the_clock_alone(ticks):
    assert ticks.tick() == {}  # a new tick, no new data: nothing, whatever the date


def test_a_redelivered_day_reruns_the_later_days_whose_window_contains_it(ticks):
    redelivered = date(2013, 10, 6)
    ticks.run(["raw_flights", "flights"], [redelivered], {"flights": GATES})  # a flights-only run

    requested = ticks.tick()["flight_features"]

    # its own day and every later present day within the 29-day trailing window
    window = [d for d in DAYS if redelivered <= d <= redelivered + timedelta(days=29)]
    assert requested == keys(*window)
    assert ticks.tick().get("flight_features") is None  # requested once


def test_a_day_landing_in_one_run_is_scored_but_its_features_are_not_rebuilt(ticks):
    new_day = DAYS[-1] + timedelta(days=1)
    ticks.land(new_day)

    requested = ticks.tick()

    assert requested.get("batch_predictions") == keys(new_day)
    # the features of that day were written in the same run; later days have no flights yet
    assert "flight_features" not in requested


def test_a_failed_blocking_check_upstream_holds_the_days_that_read_it(ticks):
    short = date(2013, 10, 20)
    ticks.land(short, short=True)
    assert "flight_features" not in ticks.tick()

    ticks.land(short)  # its complete redelivery: the day's own features are rebuilt in that run
    assert ticks.tick()["flight_features"] == keys(*(d for d in DAYS if short < d <= short + timedelta(days=29)))


def test_a_day_failing_a_blocking_gate_stays_held_after_a_later_day_passes_its_gates(ticks):
    fault, later = DAYS[-1] + timedelta(days=1), DAYS[-1] + timedelta(days=2)
    passing = {"flights": GATES, "weather": [g for g in GATES if g != "quarantine_rate"]}
    ticks.run(DAILY_INPUTS[:-1], [fault], passing, {"weather": ["quarantine_rate"]})
    ticks.land(later)  # the newest materialization of weather passed its gates: not the fault day's

    assert fault.isoformat() not in ticks.tick().get("flight_features", set())


def test_drift_checks_wait_for_the_predictions_requested_on_the_same_tick(ticks):
    new_days = [DAYS[-1] + timedelta(days=n) for n in (1, 2)]
    ticks.land(*new_days)  # two days at once: their predictions are requested as one backfill
    requested = ticks.tick()
    assert requested["batch_predictions"] == keys(*new_days)
    assert "flight_features:feature_drift" not in requested  # it would run on its own, before them

    ticks.materialize("batch_predictions", *new_days)
    requested = ticks.tick()  # once written: the checks of exactly those days
    assert requested["flight_features:feature_drift"] == requested["batch_predictions:score_drift"] == keys(*new_days)


def test_live_performance_waits_for_the_next_days_delivery(ticks):
    day = DAYS[-1]
    ticks.materialize("batch_predictions", day)
    assert "live_performance" not in ticks.tick()

    ticks.land(day + timedelta(days=1))
    assert ticks.tick()["live_performance"] == keys(day)


def test_drift_checks_follow_the_days_predictions_not_a_new_reference(ticks):
    day = DAYS[50]
    ticks.materialize("batch_predictions", day)
    requested = ticks.tick()
    assert requested["flight_features:feature_drift"] == keys(day)
    assert requested["batch_predictions:score_drift"] == keys(day)

    ticks.instance.report_runless_asset_event(dg.AssetMaterialization("drift_reference"))
    requested = ticks.tick()
    assert "flight_features:feature_drift" not in requested and "batch_predictions:score_drift" not in requested


def test_a_week_trains_once_when_the_last_day_of_its_window_lands(ticks):
    # week 2013-11-11 trains on the 13 weeks up to Sunday Nov 10 (Aug 12 .. Aug 31 were missing)
    ticks.land(*[date(2013, 8, 12) + timedelta(days=n) for n in range(20)])
    assert "training_set" not in ticks.tick()  # Nov 10 has not landed

    ticks.land(date(2013, 11, 10))
    assert ticks.tick()["training_set"] == {"2013-11-11"}
    assert "training_set" not in ticks.tick()

    ticks.materialize("training_set", date(2013, 11, 11))
    requested = ticks.tick()
    assert requested["lgbm_model"] == requested["torch_model"] == {"2013-11-11"}
    assert "training_set" not in requested


def test_the_promotion_follows_an_evaluation_only_when_its_blocking_checks_passed(ticks):
    week = date(2013, 10, 7)
    ticks.run(["model_evaluation"], [week], {"model_evaluation": QUALITY_CHECKS[:-1]}, {"model_evaluation": QUALITY_CHECKS[-1:]})
    assert "champion_promotion" not in ticks.tick()

    ticks.run(["model_evaluation"], [week], {"model_evaluation": QUALITY_CHECKS})  # evaluated again, passing
    assert ticks.tick()["champion_promotion"] == keys(week)
