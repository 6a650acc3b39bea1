"""Run tags that say what started a run. The UI filters on them, and the run queue limits how
many runs of one trigger run at once (`tag_concurrency_limits` in helm-values/dagster.yaml).

The declarative-automation sensor passes `AUTOMATION_RUN_TAGS` as its `run_tags`
(`AutomationConditionSensorDefinition(..., run_tags=AUTOMATION_RUN_TAGS)`); every other sensor
tags its run requests with `trigger_tags(<its trigger>)`.
"""

TRIGGER_TAG = "ml_assets/trigger"
# The weekly chain (training set, models, evaluation, promotion): the local run queue runs one
# such run at a time, so two searches never share the cores and the daily chain keeps its slots.
WORKLOAD_TAG = "ml_assets/workload"
WEEKLY_WORKLOAD = {WORKLOAD_TAG: "weekly"}
# A training step (an Optuna search, a network): within a run, one at a time (the local executor).
TRAINING_STEP_TAG = "ml_assets/training_step"


def trigger_tags(trigger: str) -> dict[str, str]:
    return {TRIGGER_TAG: trigger}


AUTOMATION_RUN_TAGS = trigger_tags("automation")
WEEKLY_AUTOMATION_RUN_TAGS = AUTOMATION_RUN_TAGS | WEEKLY_WORKLOAD
LANDING_ZONE_RUN_TAGS = trigger_tags("landing_zone")
