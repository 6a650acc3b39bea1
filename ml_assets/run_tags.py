"""Run tags that say what started a run. The UI filters on them, and the run queue limits how
many runs of one trigger run at once (`tag_concurrency_limits` in helm-values/dagster.yaml).

The declarative-automation sensor passes `AUTOMATION_RUN_TAGS` as its `run_tags`
(`AutomationConditionSensorDefinition(..., run_tags=AUTOMATION_RUN_TAGS)`); every other sensor
tags its run requests with `trigger_tags(<its trigger>)`.
"""

TRIGGER_TAG = "ml_assets/trigger"


def trigger_tags(trigger: str) -> dict[str, str]:
    return {TRIGGER_TAG: trigger}


AUTOMATION_RUN_TAGS = trigger_tags("automation")
LANDING_ZONE_RUN_TAGS = trigger_tags("landing_zone")
