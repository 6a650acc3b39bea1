"""One notifier for every alert: a webhook (`ML_ASSETS_ALERT_WEBHOOK`, e.g. a Slack or Teams
incoming webhook, or any HTTP endpoint taking JSON), or the log when none is configured."""

import json
import logging
import urllib.request

import dagster as dg

from ml_assets.monitoring.alerts import Alert

logger = logging.getLogger("ml_assets.alerts")


class Notifier(dg.ConfigurableResource):
    webhook_url: str | None = None
    timeout_s: float = 5.0

    def send(self, alert: Alert) -> bool:
        """Post the alert (or log it when no webhook is set); True when it was delivered. A webhook
        that fails is logged with the alert, never raised: alerting must not fail the sensor."""
        if not self.webhook_url:
            logger.warning(alert.text)
            return True
        request = urllib.request.Request(
            self.webhook_url,
            data=json.dumps(alert.payload()).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return 200 <= response.status < 300
        except OSError as error:
            logger.error(f"alert webhook failed ({error}); the alert was: {alert.text}")
            return False
