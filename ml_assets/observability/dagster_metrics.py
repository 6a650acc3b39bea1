"""Prometheus metrics read from the Dagster instance at every scrape.

Dagster keeps runs and asset-check evaluations in its instance (PostgreSQL on Kubernetes) but
exports no metrics, so the alerts on failed runs and on failing freshness, drift and performance
checks read these series. Each scrape queries the instance; nothing is cached between scrapes.

Series (labels say which run or check; rules select by label, so any job, asset or check counts):
- `ml_assets_dagster_instance_up`: 1 when the instance answered this scrape, else 0 (and nothing else).
- `ml_assets_dagster_finished_runs{job,status}`: runs that ended (SUCCESS, FAILURE, CANCELED) within
  the window (default one hour) before the scrape, with 0 for a status a job had none of.
- `ml_assets_dagster_active_runs{job,status}`: runs queued or in progress now.
- `ml_assets_dagster_oldest_queued_run_age_seconds{job}`: how long the oldest queued run has waited.
- `ml_assets_dagster_asset_check_passed{asset,check,severity}`: 1 when the latest evaluation of the
  check passed, 0 when it failed (severity WARN or ERROR, as the check reported it).
- `ml_assets_dagster_asset_check_evaluation_timestamp_seconds{asset,check,severity}`: when it ran.
"""

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone

import dagster as dg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
ACTIVE = (
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
)  # fmt: skip
MAX_RUNS_PER_SCRAPE = 10_000  # a window holding more runs than this is counted up to it

log = logging.getLogger(__name__)


class DagsterInstanceCollector(Collector):
    def __init__(
        self,
        instance: dg.DagsterInstance,
        check_keys: Sequence[dg.AssetCheckKey],
        window_seconds: float = 3600,
        clock: Callable[[], float] = time.time,
    ):
        self.instance, self.check_keys = instance, list(check_keys)
        self.window_seconds, self.clock = window_seconds, clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("ml_assets_dagster_instance_up", "1 when the Dagster instance answered this scrape.")
        try:
            families = [*self._runs(), *self._checks()]
        except Exception:  # the instance's database is down or unreachable: say so, do not fail the scrape
            log.exception("reading the Dagster instance failed")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _runs(self) -> list[GaugeMetricFamily]:
        now = self.clock()
        since = datetime.fromtimestamp(now - self.window_seconds, tz=timezone.utc)
        finished = self.instance.get_run_records(
            dg.RunsFilter(statuses=list(FINISHED), updated_after=since), limit=MAX_RUNS_PER_SCRAPE
        )
        counts = Counter((r.dagster_run.job_name, r.dagster_run.status.value) for r in finished)
        finished_family = GaugeMetricFamily(
            "ml_assets_dagster_finished_runs",
            f"Runs that ended within the last {self.window_seconds:g} s, by job and status.",
            labels=["job", "status"],
        )
        for job in sorted({job for job, _ in counts}):
            for status in FINISHED:
                finished_family.add_metric([job, status.value], counts[(job, status.value)])

        active = self.instance.get_run_records(dg.RunsFilter(statuses=list(ACTIVE)), limit=MAX_RUNS_PER_SCRAPE)
        active_family = GaugeMetricFamily(
            "ml_assets_dagster_active_runs", "Runs queued or in progress, by job and status.", labels=["job", "status"]
        )
        active_counts = Counter((r.dagster_run.job_name, r.dagster_run.status.value) for r in active)
        for (job, status), count in sorted(active_counts.items()):
            active_family.add_metric([job, status], count)
        queued_family = GaugeMetricFamily(
            "ml_assets_dagster_oldest_queued_run_age_seconds",
            "Seconds the oldest queued run of each job has waited.",
            labels=["job"],
        )
        oldest: dict[str, float] = {}
        for record in active:
            if record.dagster_run.status == dg.DagsterRunStatus.QUEUED:
                job = record.dagster_run.job_name
                oldest[job] = min(oldest.get(job, now), record.create_timestamp.timestamp())
        for job, created in sorted(oldest.items()):
            queued_family.add_metric([job], max(0.0, now - created))
        return [finished_family, active_family, queued_family]

    def _checks(self) -> list[GaugeMetricFamily]:
        labels = ["asset", "check", "severity"]
        passed = GaugeMetricFamily(
            "ml_assets_dagster_asset_check_passed",
            "1 when the latest evaluation of the asset check passed, 0 when it failed.",
            labels=labels,
        )
        evaluated = GaugeMetricFamily(
            "ml_assets_dagster_asset_check_evaluation_timestamp_seconds",
            "When the latest evaluation of the asset check was recorded (Unix time).",
            labels=labels,
        )
        summaries = self.instance.event_log_storage.get_asset_check_summary_records(self.check_keys)
        for key in sorted(summaries, key=lambda k: (k.asset_key.to_user_string(), k.name)):
            record = summaries[key].last_completed_check_execution_record
            evaluation = record.event.asset_check_evaluation if record and record.event else None
            if evaluation is None:
                continue  # never evaluated
            values = [key.asset_key.to_user_string(), key.name, evaluation.severity.value]
            passed.add_metric(values, 1 if evaluation.passed else 0)
            evaluated.add_metric(values, record.event.timestamp)
        return [passed, evaluated]
