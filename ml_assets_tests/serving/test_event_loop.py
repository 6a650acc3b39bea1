"""No blocking call on the event loop: while a request waits on a stuck online store, liveness,
metrics and the other routes that do not need the store answer at once (uvicorn, real sockets)."""

import shutil
import threading
import time

import httpx
import pytest

from ml_assets.serving.app import create_app
from ml_assets.serving.sqlite_store import SqliteOnlineStore
from ml_assets_tests.serving.conftest import flight_request, served

STUCK_FOR_S = 20  # the most a stuck call waits; the test releases it long before


class StuckStore:
    """The real store, except that one of its methods waits until released."""

    def __init__(self, inner, method: str):
        self.inner, self.method = inner, method
        self.entered, self.release = threading.Event(), threading.Event()

    def __getattr__(self, name):
        attribute = getattr(self.inner, name)
        if name != self.method:
            return attribute

        def stuck(*args, **kwargs):
            self.entered.set()
            self.release.wait(STUCK_FOR_S)
            return attribute(*args, **kwargs)

        return stuck


@pytest.mark.parametrize(
    ("method", "path"),
    [("read_snapshot", "/v1/predict"), ("ping", "/v2/health/ready")],
    ids=["predict waits on the store", "readiness waits on the store"],
)
def test_a_stuck_store_does_not_stall_liveness(make_service, warm_store_file, parity_flights, tmp_path, method, path):
    body = {"flights": [flight_request(parity_flights.row(0, named=True))]} if path == "/v1/predict" else None
    store = StuckStore(SqliteOnlineStore(_copy(warm_store_file, tmp_path)), method)
    service = make_service(store=store)
    answers = {}
    with served(create_app(service)) as base:
        waiting = threading.Thread(target=lambda: answers.update(stuck=_call(base, path, body)), daemon=True)
        waiting.start()
        try:
            assert store.entered.wait(10), "the request never reached the store"
            timings = {}
            for route in ("/v2/health/live", "/metrics", "/v2/models/flight_disruption/ready"):
                began = time.perf_counter()
                status = httpx.get(f"{base}{route}", timeout=2).status_code
                timings[route] = (status, time.perf_counter() - began)
        finally:
            store.release.set()
        waiting.join(STUCK_FOR_S)

    assert all(status == 200 and seconds < 0.5 for status, seconds in timings.values()), timings
    assert answers["stuck"] == 200


def _call(base: str, path: str, body) -> int:
    if body is None:
        return httpx.get(f"{base}{path}", timeout=STUCK_FOR_S + 5).status_code
    return httpx.post(f"{base}{path}", json=body, timeout=STUCK_FOR_S + 5).status_code


def _copy(source, folder):
    target = folder / "stuck" / "online_store.db"
    target.parent.mkdir()
    shutil.copy(source, target)
    return target
