"""The online store and the prediction log as a resource: the serving assets push the daily
features to one and move the other into the lake.

`url` is ML_ASSETS_ONLINE_STORE: `redis://...` (the store and a Redis-stream log) or unset (SQLite
files under `data_dir`, by default the project's data folder).
"""

from pathlib import Path

import dagster as dg

from ml_assets.settings import data_dir as default_data_dir


class OnlineStoreResource(dg.ConfigurableResource):
    url: str | None = None
    data_dir: str | None = None

    def _folder(self) -> Path:
        return Path(self.data_dir) if self.data_dir else default_data_dir()

    def open_store(self):
        from ml_assets.serving.store import open_store

        return open_store(self.url, self._folder())

    def open_prediction_log(self):
        from ml_assets.serving.prediction_log import open_prediction_log

        return open_prediction_log(self.url, self._folder())
