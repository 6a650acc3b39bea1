"""Who may call what: every route with no, a wrong, the read and the write token; per-caller rate
limits; the caller in the prediction log."""

import sqlite3
import time
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from ml_assets.flights.feature_spec import FEATURES_TABLE
from ml_assets.serving.access import MAX_CALLERS, AccessSettings, RateLimiter
from ml_assets.serving.app import create_app
from ml_assets.serving.prediction_log import FIELDS, SqlitePredictionLog
from ml_assets.serving.realtime import LOCAL
from ml_assets_tests.serving.conftest import PARITY_DAY, flight_request, json_tensors

WRITE_TOKEN, READ_TOKEN = "write-s3cret", "read-s3cret"
TOKENS = {"none": None, "wrong": "not-the-token", "read": READ_TOKEN, "write": WRITE_TOKEN}
PUBLIC = {"none": 200, "wrong": 200, "read": 200, "write": 200}
READ = {"none": 401, "wrong": 401, "read": 200, "write": 200}
WRITE = {"none": 401, "wrong": 401, "read": 403, "write": 200}


@pytest.fixture(scope="module")
def bodies(real_lake, parity_flights) -> dict:
    rows = real_lake.scan(FEATURES_TABLE, PARITY_DAY, PARITY_DAY).collect().sort("flight_id").head(2)
    inputs = json_tensors(rows)
    flight = flight_request(parity_flights.sort("flight_id").row(0, named=True))
    event = {"type": "weather", "event_id": "w-access", "origin": "JFK", "observed_at": "2013-02-09T23:00:00Z"}
    return {"predict": {"flights": [flight]}, "infer": {"inputs": inputs}, "events": {"events": [event]}}


ROUTES = [
    ("GET", "/v2/health/live", None, PUBLIC),
    ("GET", "/v2/health/ready", None, PUBLIC),
    ("GET", "/v2/models/flight_disruption/ready", None, PUBLIC),
    ("GET", "/v2/models/flight_disruption/versions/1/ready", None, PUBLIC),
    ("GET", "/metrics", None, PUBLIC),
    ("GET", "/docs", None, PUBLIC),
    ("GET", "/redoc", None, PUBLIC),
    ("GET", "/openapi.json", None, PUBLIC),
    ("POST", "/v1/predict", "predict", READ),
    ("GET", "/v2", None, READ),
    ("GET", "/v2/models/flight_disruption", None, READ),
    ("GET", "/v2/models/flight_disruption/versions/1", None, READ),
    ("POST", "/v2/models/flight_disruption/infer", "infer", READ),
    ("POST", "/v2/models/flight_disruption/versions/1/infer", "infer", READ),
    ("POST", "/v1/events", "events", WRITE),
    ("GET", "/v1/status", None, WRITE),
]


def call(client, method: str, path: str, body, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.request(method, path, json=body, headers=headers)


def test_every_route_with_every_token(make_service, bodies):
    with TestClient(create_app(make_service(token=WRITE_TOKEN, read_token=READ_TOKEN))) as client:
        answers = {
            (path, who): call(client, method, path, bodies.get(body), token)
            for method, path, body, _ in ROUTES
            for who, token in TOKENS.items()
        }

    for method, path, _, expected in ROUTES:
        got = {who: answers[(path, who)].status_code for who in TOKENS}
        assert got == expected, (method, path, got, answers[(path, "write")].text[:300])
        for who in TOKENS:
            answer = answers[(path, who)]
            assert "s3cret" not in answer.text, (path, who)
            if answer.status_code in (401, 403):
                key = "error" if path.startswith("/v2") else "detail"
                assert "token" in answer.json()[key], (path, who)
            if answer.status_code == 401:
                assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_without_a_token_configured_every_route_is_open(make_service, bodies):
    with TestClient(create_app(make_service())) as client:
        statuses = {path: call(client, method, path, bodies.get(body), None).status_code for method, path, body, _ in ROUTES}

    assert set(statuses.values()) == {200}, statuses


def test_the_prediction_log_records_who_asked_never_the_token(make_service, bodies):
    service = make_service(token=WRITE_TOKEN, read_token=READ_TOKEN)
    with TestClient(create_app(service)) as client:
        predicted = call(client, "POST", "/v1/predict", bodies["predict"], READ_TOKEN)
        inferred = call(client, "POST", "/v2/models/flight_disruption/infer", bodies["infer"], WRITE_TOKEN)
        refused = call(client, "POST", "/v2/models/flight_disruption/infer", bodies["infer"], None)
        deadline = time.monotonic() + 5
        while service.log_writer.pending and time.monotonic() < deadline:
            time.sleep(0.05)
        logged = service.log_writer.log.read_day(PARITY_DAY)
        logged_today = service.log_writer.log.read_day(datetime.now(LOCAL).date())

    assert predicted.status_code == inferred.status_code == 200 and refused.status_code == 401
    assert [r["caller"] for r in logged] == ["read-token@testclient"]
    assert [r["caller"] for r in logged_today] == ["write-token@testclient"] * 2  # two rows, none from the refused call
    assert not any("s3cret" in str(r) for r in logged + logged_today)


def test_rate_limits_answer_429_per_caller(make_service, bodies):
    service = make_service(token=WRITE_TOKEN, read_token=READ_TOKEN, rate_limit_per_s=1, rate_limit_burst=2)
    with TestClient(create_app(service)) as client:
        reads = [call(client, "GET", "/v2/models/flight_disruption", None, READ_TOKEN) for _ in range(3)]
        other_caller = call(client, "GET", "/v2/models/flight_disruption", None, WRITE_TOKEN)
        health = [client.get("/v2/health/ready").status_code for _ in range(5)]
        time.sleep(1.05)
        refilled = call(client, "GET", "/v2/models/flight_disruption", None, READ_TOKEN)

    assert [r.status_code for r in reads] == [200, 200, 429]
    assert reads[2].headers["Retry-After"] == "1" and "rate limit of 1 requests/s" in reads[2].json()["error"]
    assert other_caller.status_code == 200 and health == [200] * 5 and refilled.status_code == 200


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_token_bucket_refills_at_its_rate_and_forgets_idle_callers():
    clock = Clock()
    limiter = RateLimiter(rate_per_s=4, burst=3, clock=clock)

    burst = [limiter.wait_s("a") for _ in range(4)]
    clock.now += 0.125  # half a token
    half = limiter.wait_s("a")
    clock.now += 0.125
    whole = limiter.wait_s("a")

    assert burst[:3] == [0, 0, 0] and burst[3] == pytest.approx(0.25)
    assert half == pytest.approx(0.125) and whole == 0 and limiter.wait_s("b") == 0


def test_the_buckets_kept_are_bounded():
    clock = Clock()
    limiter = RateLimiter(rate_per_s=1, burst=2, clock=clock)
    for n in range(MAX_CALLERS):
        limiter.wait_s(f"caller-{n}")
    assert len(limiter) == MAX_CALLERS

    clock.now += 5  # every bucket is full again: forgetting one changes nothing
    limiter.wait_s("new")
    assert len(limiter) == 1

    for n in range(MAX_CALLERS):  # all busy at once: all are forgotten
        limiter.wait_s(f"busy-{n}")
    assert len(limiter) == 0


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"read_token": "r"}, "ML_ASSETS_READ_TOKEN is set without ML_ASSETS_API_TOKEN"),
        ({"write_token": "same", "read_token": "same"}, "ML_ASSETS_READ_TOKEN equals ML_ASSETS_API_TOKEN"),
        ({"rate_per_s": -1.0}, "both must be positive"),
        ({"rate_per_s": 5.0, "burst": 0}, "both must be positive"),
    ],
)
def test_contradictory_access_settings_are_refused(settings, says):
    with pytest.raises(ValueError, match=says):
        AccessSettings(**settings)


def test_a_prediction_log_from_before_the_caller_field_gains_it(tmp_path):
    earlier = [f for f in FIELDS if f != "caller"]
    with sqlite3.connect(tmp_path / "log.db") as db:
        db.execute(f"CREATE TABLE prediction_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, {', '.join(earlier)})")
        db.execute(f"INSERT INTO prediction_log ({', '.join(earlier)}) VALUES ({', '.join('?' * len(earlier))})",
                   [str(PARITY_DAY) if f == "date" else "x" for f in earlier])  # fmt: skip
    log = SqlitePredictionLog(tmp_path / "log.db")
    record = dict.fromkeys(FIELDS, "y") | {"date": str(PARITY_DAY), "caller": "read-token@10.0.0.7"}
    log.append([record])

    assert [r["caller"] for r in log.read_day(PARITY_DAY)] == [None, "read-token@10.0.0.7"]
    log.close()
