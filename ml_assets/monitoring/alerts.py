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
