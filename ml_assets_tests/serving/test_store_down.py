"""Outages of the Redis behind the service (cut by a proxy in front of the real server): the online
store down gives 503 on predict, readiness false and liveness true; the prediction log down loses
nothing, neither while the service runs nor when it stops."""

import time
from datetime import date

import pytest
from fastapi.testclient import TestClient

from ml_assets.serving.app import create_app
from ml_assets.serving.prediction_log import RedisPredictionLog
from ml_assets.serving.redis_store import RedisOnlineStore
from ml_assets.serving.warmup import warm_from_lake
from ml_assets_tests.serving.conftest import PARITY_DAY, flight_request
from ml_assets_tests.serving.tcp_proxy import TcpProxy


@pytest.fixture
def outage(real_lake, parity_flights):
    """A warm Redis online store and a Redis prediction log, each behind its own proxy."""
    prefix = f"ml_assets_test:outage{time.time_ns()}:"
    store_proxy, log_proxy = TcpProxy(6379), TcpProxy(6379)
    store_proxy.start()
    log_proxy.start()
    store = RedisOnlineStore(f"{store_proxy.url}?prefix={prefix}")
    warm_from_lake(real_lake, store, PARITY_DAY)
    bodies = [flight_request(r) for r in parity_flights.sort("flight_id").to_dicts()]
    yield store_proxy, log_proxy, prefix, store, bodies
    store_proxy.stop()
    log_proxy.stop()
    RedisOnlineStore(f"redis://127.0.0.1:6379/0?prefix={prefix}").delete_everything()


def logged_request_ids(prefix: str, day: date) -> list[str]:
    """Read straight from Redis, past the proxies."""
    return [r["request_id"] for r in RedisPredictionLog(f"redis://127.0.0.1:6379/0?prefix={prefix}").read_day(day)]


def wait_for(condition, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_store_down_is_503_not_ready_but_live_and_the_log_keeps_everything(make_service, outage):
    store_proxy, log_proxy, prefix, store, bodies = outage
    log = RedisPredictionLog(f"{log_proxy.url}?prefix={prefix}")
    service = make_service(store=store, prediction_log=log)
    served = []
    with TestClient(create_app(service)) as client:
        for body in bodies[:10]:
            served.append(client.post("/v1/predict", json={"flights": [body]}).json()["request_id"])

        log_proxy.stop()  # the log is down: predictions go on, their records wait
        for body in bodies[10:20]:
            response = client.post("/v1/predict", json={"flights": [body]})
            assert response.status_code == 200
            served.append(response.json()["request_id"])
        wait_for(lambda: service.metrics.log_errors._value.get() > 0)
        assert service.log_writer.pending > 0

        store_proxy.stop()  # now the online store too
        down = client.post("/v1/predict", json={"flights": [bodies[20]]})
        ready = client.get("/v2/health/ready")
        live = client.get("/v2/health/live")
        metrics = client.get("/metrics").text

        store_proxy.start()
        log_proxy.start()
        back = client.post("/v1/predict", json={"flights": [bodies[21]]})
        served.append(back.json()["request_id"])
        ready_again = client.get("/v2/health/ready")
        wait_for(lambda: service.log_writer.pending == 0)

    assert down.status_code == 503 and down.headers["Retry-After"] == "5"
    assert down.json()["detail"].startswith(f"online store unavailable: online store {store_proxy.url}")
    assert ready.status_code == 503 and ready.json()["ready"] is False and store_proxy.url in ready.json()["reason"]
    assert live.status_code == 200 and live.json() == {"live": True}
    assert 'ml_assets_serving_online_store_errors_total{operation="read"} 1.0' in metrics
    assert "ml_assets_serving_prediction_log_errors_total" in metrics
    assert back.status_code == 200 and ready_again.json() == {"ready": True, "reason": None}
    assert logged_request_ids(prefix, PARITY_DAY) == served  # every served prediction, in order


def test_records_the_log_could_not_take_are_spilled_and_written_at_the_next_start(make_service, outage):
    store_proxy, log_proxy, prefix, store, bodies = outage
    first = make_service(store=store, prediction_log=RedisPredictionLog(f"{log_proxy.url}?prefix={prefix}"))
    log_proxy.stop()
    with TestClient(create_app(first)) as client:
        served = [client.post("/v1/predict", json={"flights": [b]}).json()["request_id"] for b in bodies[:5]]
    spilled = list((first.settings.data_dir / "serving" / "prediction_log_spill").glob("*.jsonl"))
    assert len(spilled) == 1 and logged_request_ids(prefix, PARITY_DAY) == []

    log_proxy.start()
    second = make_service(store=RedisOnlineStore(f"{store_proxy.url}?prefix={prefix}"),
                          prediction_log=RedisPredictionLog(f"{log_proxy.url}?prefix={prefix}"))  # fmt: skip
    second.log_writer.spill_dir = first.log_writer.spill_dir  # the same pod restarted
    second.start()
    wait_for(lambda: second.log_writer.pending == 0 and not spilled[0].exists())

    assert logged_request_ids(prefix, PARITY_DAY) == served
