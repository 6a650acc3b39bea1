"""Declarative automation: which assets and checks follow their upstream, composed from Dagster's
building blocks, and the sensor that evaluates them.

Every condition is data-driven: a target runs because something it reads changed and everything
it reads is present, never because a clock ticked. A replay of 2013 runs in 2026, where "the
latest time window" of the daily partitions is 2013-12-31 and a cron would see nothing to do.

- The data layers up to `processed` run from the landing-zone sensor (a day at a time).
- `flight_features` follows its inputs: a re-delivered day re-runs every later day whose trailing
  window contains it (the partition mappings declare the windows), once all of its inputs are
  present and their blocking checks passed.
- `batch_predictions`, the drift checks and `live_performance` follow the day's features and
  predictions; `live_performance` waits for the next day's delivery (the label delay).
- Weekly: `training_set` runs once, when the last day of its window lands; the models follow it;
  `model_evaluation` runs when the week's own days are all in; `champion_promotion` follows only
  when the evaluation's blocking quality checks passed.
"""

import dagster as dg

from ml_assets.run_tags import AUTOMATION_RUN_TAGS, WEEKLY_AUTOMATION_RUN_TAGS

AC = dg.AutomationCondition

# Lineage-only dependencies that must not trigger anything: a new champion does not rescore the
# past, and a new drift reference does not re-run every day's drift checks.
NOT_TRIGGERS = dg.AssetSelection.assets("champion_promotion", "drift_reference")


def ready(condition: dg.AutomationCondition) -> dg.AutomationCondition:
    """`condition`, when every input is present, none is being written, and the target is not
    already running."""
    return (
        condition
        & ~AC.any_deps_missing().ignore(NOT_TRIGGERS)
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    )


def blocking_checks_passed() -> dg.AutomationCondition:
    """Every input's blocking checks passed, and no input partition the target reads failed one.
    Dagster's `all_deps_blocking_checks_passed` holds when any partition of a dependency's window
    passed (a 29-day window with one failed day passes it), hence the second half."""
    failed_day = AC.any_checks_match(AC.check_failed(), blocking_only=True)
    return (
        AC.all_deps_blocking_checks_passed() & ~AC.any_deps_match(failed_day).with_label("an input day failed a blocking check")
    ).with_label("blocking checks passed")


def follows_upstream() -> dg.AutomationCondition:
    """Run again whenever an input changed (since this target last ran or was requested), once
    the inputs are ready and their blocking checks passed."""
    return ready(
        AC.any_deps_updated().ignore(NOT_TRIGGERS).since_last_handled() & blocking_checks_passed()
    ).with_label("follows upstream")


def runs_once_when_complete() -> dg.AutomationCondition:
    """Run a target that was never materialized, when an input changes and all are present
    (a week's training once the last day of its window has landed)."""
    return ready(
        AC.missing() & AC.any_deps_updated().since_last_handled() & blocking_checks_passed()
    ).with_label("once, when its window is complete")


def follows_promotions() -> dg.AutomationCondition:
    """The champion's drift reference after each promotion decision (computed once per version)."""
    return (AC.any_deps_updated().since_last_handled() & ~AC.in_progress()).with_label("follows promotions")


def check_follows_upstream() -> dg.AutomationCondition:
    """A check runs when its asset's partition or an input changed, once every partition it reads
    has been written and none is being written or requested on this tick: a request of this tick
    may become a run of its own (a multi-day backfill does), so a check requested beside it could
    read the day before its predictions land."""
    return (
        AC.any_deps_updated().ignore(NOT_TRIGGERS).since_last_handled()
        & ~AC.any_deps_match(AC.missing() | AC.will_be_requested()).ignore(NOT_TRIGGERS)
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label("follows upstream")


CONDITIONS = {
    "flight_features": follows_upstream,
    "batch_predictions": follows_upstream,
    "live_performance": follows_upstream,
    "drift_reference": follows_promotions,
    "training_set": runs_once_when_complete,
    "lgbm_model": follows_upstream,
    "torch_model": follows_upstream,
    "model_evaluation": follows_upstream,
    "champion_promotion": follows_upstream,
}


def with_automation(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The spec with its condition from CONDITIONS (assets outside it run from jobs and sensors)."""
    condition = CONDITIONS.get(spec.key.to_user_string())
    return spec.replace_attributes(automation_condition=condition()) if condition else spec


# The weekly chain has a sensor of its own so its runs carry the weekly workload tag (the run queue
# runs one at a time); the daily chain and the monitoring keep theirs.
WEEKLY_CHAIN = dg.AssetSelection.groups("training", "evaluation")
automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation",
    target=dg.AssetSelection.all(include_sources=False) - WEEKLY_CHAIN,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    run_tags=AUTOMATION_RUN_TAGS,
    description="Evaluates the declarative automation of the daily chain and the monitoring.",
)
weekly_automation_sensor = dg.AutomationConditionSensorDefinition(
    "weekly_automation",
    target=WEEKLY_CHAIN,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    run_tags=WEEKLY_AUTOMATION_RUN_TAGS,
    description="Evaluates the declarative automation of the weekly models, their evaluation and the promotion gate.",
)
