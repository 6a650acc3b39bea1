"""Alerts: what went wrong, where, and for which partition, in one shape for every source."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Alert:
    kind: str  # "run_failure", "check_failure" or "retraining"
    summary: str  # one line: what happened
    run_id: str | None = None
    job: str | None = None
    step: str | None = None  # the failed step(s)
    asset: str | None = None
    check: str | None = None
    partition: str | None = None
    severity: str | None = None
    error: str | None = None  # the error message or the check's reason

    @property
    def text(self) -> str:
        """One human line (Slack-style webhooks show `text`)."""
        where = ", ".join(
            f"{name} {value}"
            for name, value in (
                ("job", self.job), ("run", self.run_id), ("step", self.step), ("asset", self.asset),
                ("check", self.check), ("partition", self.partition),
            )
            if value
        )  # fmt: skip
        detail = f": {self.error}" if self.error else ""
        return f"[ml_assets {self.severity or self.kind}] {self.summary} ({where}){detail}"[:3000]

    def payload(self) -> dict:
        """The JSON a webhook receives: `text` plus every field."""
        return {"text": self.text, **asdict(self)}


# Set on a check result whose alert left from the check itself: the alert sensor does not repeat it.
ALERT_SENT = "alert_sent"
REASON_KEYS = ("reason", "drifted_columns", "short_days", "breaches")


def check_reason(metadata) -> str:
    """What a failed check says about itself (the first of its explaining metadata entries)."""
    values = {key: getattr(value, "value", value) for key, value in metadata.items()}
    return next((str(values[k]) for k in REASON_KEYS if values.get(k)), "")


def check_failure_alert(asset: str, check: str, partition: str | None, severity: str, metadata, run_id: str | None) -> Alert:
    return Alert(
        "check_failure", f"check {check} failed on {asset}", run_id=run_id, asset=asset, check=check,
        partition=partition, severity=severity, error=check_reason(metadata)[:1000],
    )  # fmt: skip
