"""The HTTP contract: predictions by flight identity, the event feed, the Open Inference Protocol,
health, metrics and the prediction log (a real day, a real local registry, in process)."""

import time

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from ml_assets.flights.feature_spec import CONTEXT_COLUMNS, FEATURES, FEATURES_TABLE
from ml_assets.models.scoring import load_scoring_model
from ml_assets.serving.app import create_app
from ml_assets.serving.schemas import PredictResponse
from ml_assets_tests.serving.conftest import PARITY_DAY, flight_request, json_tensors

CONTRACT_METRICS = [
    "ml_assets_serving_requests_total", "ml_assets_serving_request_duration_seconds",
    "ml_assets_serving_predictions_total", "ml_assets_serving_prediction_score",
    "ml_assets_serving_feature_age_seconds", "ml_assets_serving_online_store_errors_total",
    "ml_assets_serving_rollout_state", "ml_assets_serving_rollout_percent",
    "ml_assets_serving_rollout_aborts_total", "ml_assets_serving_model_info",
    "ml_assets_serving_prediction_log_errors_total",
]  # fmt: skip


@pytest.fixture
def client(make_service):
    with TestClient(create_app(make_service())) as client:
        yield client


@pytest.fixture(scope="module")
def offline(real_lake) -> pl.DataFrame:
    return real_lake.scan(FEATURES_TABLE, PARITY_DAY, PARITY_DAY).collect()


def requests_for(parity_flights: pl.DataFrame, count: int) -> tuple[list[dict], list[str]]:
    rows = parity_flights.sort("flight_id").head(count).to_dicts()
    return [flight_request(r) for r in rows], [r["flight_id"] for r in rows]


def test_one_flight_gets_the_risk_the_model_gives_its_offline_row(client, parity_flights, offline, registry):
    (body,), (flight_id,) = requests_for(parity_flights, 1)

    response = client.post("/v1/predict", json={"flights": [body]})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert PredictResponse.model_validate(answer).model_dump(mode="json") == answer  # the documented schema
    (prediction,) = answer["predictions"]
    row = offline.filter(pl.col("flight_id") == flight_id)
    expected = load_scoring_model(registry, "1").predict_proba(row)[0]
    assert prediction["flight_key"] == flight_id and answer["model_name"] == "flight_disruption"
    assert prediction["risk"] == pytest.approx(expected, abs=1e-9)
    assert (prediction["model_version"], prediction["role"]) == ("1", "champion")
    assert prediction["prediction_time"].replace("Z", "+00:00") == row["prediction_time_utc"][0].isoformat()
    freshness = prediction["freshness"]
    assert freshness["daily_features_for"] == str(PARITY_DAY) and freshness["realtime_complete"] is True
    assert freshness["realtime_lag_seconds"] == 0 and freshness["events_as_of"]
    assert prediction["features"] is None and len(answer["request_id"]) == 32


def test_a_batch_keeps_its_order_and_returns_the_offline_features(client, parity_flights, offline):
    bodies, flight_ids = requests_for(parity_flights, 60)

    response = client.post("/v1/predict", json={"flights": bodies, "return_features": True}, headers={"X-Request-ID": "batch-1"})

    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    PredictResponse.model_validate(response.json())
    assert [p["flight_key"] for p in predictions] == flight_ids and response.json()["request_id"] == "batch-1"
    by_id = {r["flight_id"]: r for r in offline.iter_rows(named=True)}
    for prediction in predictions:
        row = by_id[prediction["flight_key"]]
        for column in [*FEATURES, *CONTEXT_COLUMNS]:
            assert prediction["features"][column] == pytest.approx(row[column], abs=1e-6), column
    assert len({p["risk"] for p in predictions}) > 20


def test_a_missing_tailnum_comes_from_the_published_schedule(client, parity_flights):
    row = parity_flights.filter(pl.col("tailnum").is_not_null()).sort("flight_id").row(5, named=True)
    with_tail = flight_request(row)
    without = {k: v for k, v in with_tail.items() if k != "tailnum"}

    answers = [client.post("/v1/predict", json={"flights": [b], "return_features": True}).json() for b in (with_tail, without)]

    assert answers[0]["predictions"][0]["features"] == answers[1]["predictions"][0]["features"]
    assert answers[0]["predictions"][0]["features"]["plane_seats"] is not None


FLIGHT = {"carrier": "AA", "flight": 3, "origin": "JFK", "dest": "LAX", "sched_dep": "2013-02-08T12:00:00-05:00"}


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"carrier": "ZZ"}, "carrier", "unknown carrier 'ZZ'"),
        ({"origin": "BOS"}, "origin", "origin 'BOS' is not served (served: EWR, JFK, LGA)"),
        ({"dest": "QQQ"}, "dest", "unknown airport 'QQQ'"),
        ({"sched_dep": "2013-03-20T12:00:00-04:00"}, "sched_dep", "no daily features for 2013-03-20"),
        ({"dest": "ANC"}, "dest", "unknown route JFK-ANC: no published schedule or recent flight gives its distance"),
    ],
)
def test_flights_the_store_cannot_describe_are_422_naming_the_field(client, change, field, says):
    response = client.post("/v1/predict", json={"flights": [FLIGHT, FLIGHT | change]})

    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "flights", 1, field] and says in problem["msg"]


def test_a_prediction_point_before_the_kept_state_is_422(make_service):
    from datetime import datetime, timezone

    service = make_service()
    service.store.expire(datetime(2013, 2, 8, 10, 0, tzinfo=timezone.utc).timestamp())
    with TestClient(create_app(service)) as client:
        early = client.post("/v1/predict", json={"flights": [FLIGHT]})  # 12:00 local: needs state from 03:00 UTC
        later = client.post("/v1/predict", json={"flights": [FLIGHT | {"sched_dep": "2013-02-08T22:00:00-05:00"}]})

    assert early.status_code == 422 and later.status_code == 200
    (problem,) = early.json()["detail"]
    assert problem["msg"] == (
        "the prediction point 2013-02-08T15:00:00Z needs real-time state from 2013-02-08T03:00:00Z, "
        "the online store has it from 2013-02-08T10:00:00Z"
    )


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"flights": [FLIGHT | {"sched_dep": "2013-02-08T12:00:00"}]}, "sched_dep"),  # no offset
        ({"flights": [FLIGHT | {"sched_dep": "9999-12-31T23:59:59+14:00"}]}, "sched_dep"),
        ({"flights": [FLIGHT | {"flight": "three"}]}, "flight"),
        ({"flights": [FLIGHT | {"carrier": "aa"}]}, "carrier"),
        ({"flights": [FLIGHT | {"tailnum": "N 1"}]}, "tailnum"),
        ({"flights": [FLIGHT | {"gate": "B22"}]}, "gate"),
        ({"flights": [{k: v for k, v in FLIGHT.items() if k != "dest"}]}, "dest"),
        ({"flights": []}, "flights"),
        ({"flights": [FLIGHT] * 11}, "flights"),
        ({"flight": FLIGHT}, "flights"),
    ],
)
def test_malformed_requests_are_422_naming_the_field(make_service, body, where):
    with TestClient(create_app(make_service(max_batch=10))) as client:
        response = client.post("/v1/predict", json=body)

    assert response.status_code == 422, response.text
    assert any(where in map(str, problem["loc"]) for problem in response.json()["detail"]), response.json()


def test_malformed_json_and_the_wrong_body_type_are_422(client):
    broken = client.post("/v1/predict", content=b'{"flights": [', headers={"Content-Type": "application/json"})
    a_list = client.post("/v1/predict", json=[FLIGHT])

    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"
    assert a_list.status_code == 422


def test_events_are_applied_once_and_move_the_watermark(client):
    events = [
        {"type": "weather", "event_id": "weather/JFK/late", "origin": "JFK", "observed_at": "2013-02-09T01:00:00-05:00",
         "temp": 30.0, "visib": 2.5},  # 2 h past the warm store's clock (a day ahead would be rejected)
        {"type": "schedule", "event_id": "schedule/x", "carrier": "AA", "flight": 9999, "origin": "JFK", "dest": "LAX",
         "sched_dep": "2013-02-10T08:00:00-05:00", "distance": 2475.0},
    ]  # fmt: skip

    first = client.post("/v1/events", json={"events": events})
    again = client.post("/v1/events", json={"events": events})

    assert first.status_code == 200, first.text
    assert (first.json()["applied"], first.json()["duplicates"], first.json()["received"]) == (2, 0, 2)
    assert (again.json()["applied"], again.json()["duplicates"]) == (0, 2)
    assert again.json()["events_as_of"].startswith("2013-02-09T06:00:00")


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ({"type": "departure", "event_id": "d", "carrier": "AA", "flight": 1, "origin": "JFK", "dest": "LAX",
          "sched_dep": "2013-02-08T08:00:00-05:00", "actual_dep": "2013-02-12T08:00:00-05:00"}, "minutes from sched_dep"),
        ({"type": "weather", "event_id": "w", "origin": "JFK", "observed_at": "2013-02-08T08:00:00", "temp": 1.0}, "timezone"),
        ({"type": "weather", "event_id": "w", "origin": "JFK", "observed_at": "2013-02-08T08:00:00Z", "visib": 99.0}, "visib"),
        ({"type": "landing", "event_id": "l"}, "tag"),
        ({"type": "cancellation", "event_id": "with space", "carrier": "AA", "flight": 1, "origin": "JFK",
          "dest": "LAX", "sched_dep": "2013-02-08T08:00:00Z"}, "event_id"),
    ],  # fmt: skip
)
def test_bad_events_are_422(client, event, says):
    response = client.post("/v1/events", json={"events": [event]})

    assert response.status_code == 422 and says in response.text


def test_inference_protocol_scores_full_vectors_like_the_model(client, offline, registry):
    rows = offline.sort("flight_id").head(25)
    inputs = json_tensors(rows)

    response = client.post("/v2/models/flight_disruption/infer", json={"id": "r1", "inputs": inputs})

    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    expected = load_scoring_model(registry, "1").predict_proba(rows)
    assert (output["name"], output["datatype"], output["shape"]) == ("disruption_probability", "FP64", [25])
    np.testing.assert_allclose(output["data"], expected, atol=1e-9)
    assert response.json()["model_version"] == "1" and response.json()["id"] == "r1"

    missing = client.post("/v2/models/flight_disruption/infer", json={"inputs": inputs[1:]})
    uneven = client.post("/v2/models/flight_disruption/infer", json={"inputs": [inputs[0] | {"shape": [3]}, *inputs[1:]]})
    typed = client.post("/v2/models/flight_disruption/infer", json={"inputs": [inputs[0] | {"datatype": "FP64"}, *inputs[1:]]})
    unknown = client.post("/v2/models/other/infer", json={"inputs": inputs})
    assert missing.status_code == 400 and missing.json() == {"error": "missing inputs: ['carrier']"}
    assert uneven.status_code == 400 and "every input needs the same number of rows, got [3, 25]" in uneven.json()["error"]
    assert typed.status_code == 400 and "expected one of ['BYTES']" in typed.json()["error"]
    assert unknown.status_code == 404 and "model 'other' not found" in unknown.json()["error"]


def test_health_and_model_metadata(client):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True, "reason": None}
    assert client.get("/v2/models/flight_disruption/ready").json() == {"name": "flight_disruption", "ready": True}
    metadata = client.get("/v2/models/flight_disruption").json()
    assert metadata["versions"] == ["1"] and metadata["platform"] == "lightgbm"
    assert [i["name"] for i in metadata["inputs"]] == FEATURES
    assert client.get("/v2").json()["name"] == "ml_assets"
    assert client.get("/v2/models/nope/ready").status_code == 404


def test_without_a_champion_the_service_is_live_but_not_ready(make_service, registry, parity_flights):
    registry.client.delete_registered_model_alias(registry.model_name, "champion")
    (body,), _ = requests_for(parity_flights, 1)
    with TestClient(create_app(make_service())) as client:
        ready = client.get("/v2/health/ready")
        predict = client.post("/v1/predict", json={"flights": [body]})
        live = client.get("/v2/health/live")

    assert ready.status_code == 503 and ready.json()["ready"] is False and "no champion" in ready.json()["reason"]
    assert predict.status_code == 503 and "no champion model is loaded" in predict.json()["detail"]
    assert live.status_code == 200


def test_metrics_export_the_contract_names(client, parity_flights):
    bodies, _ = requests_for(parity_flights, 3)
    client.post("/v1/predict", json={"flights": bodies})
    client.post("/v1/predict", json={"flights": [FLIGHT | {"carrier": "ZZ"}]})

    text = client.get("/metrics").text

    for name in CONTRACT_METRICS:
        assert f"# TYPE {name} " in text, name
    assert "_created" not in text
    assert 'ml_assets_serving_requests_total{method="POST",route="/v1/predict",status="200"} 1.0' in text
    assert 'ml_assets_serving_requests_total{method="POST",route="/v1/predict",status="422"} 1.0' in text
    assert 'ml_assets_serving_predictions_total{model_version="1",role="champion"} 3.0' in text
    assert 'ml_assets_serving_model_info{model_version="1",role="champion"} 1.0' in text
    assert 'ml_assets_serving_rollout_state{mode="none"} 1.0' in text
    assert 'ml_assets_serving_feature_age_seconds_count{kind="daily"} 3.0' in text
    assert 'ml_assets_serving_request_duration_seconds_count{route="/v1/predict"} 2.0' in text


def test_every_served_prediction_is_in_the_log(make_service, parity_flights):
    bodies, flight_ids = requests_for(parity_flights, 5)
    service = make_service()
    with TestClient(create_app(service)) as client:
        answers = [client.post("/v1/predict", json={"flights": [b]}).json() for b in bodies]
        deadline = time.monotonic() + 5
        while service.log_writer.pending and time.monotonic() < deadline:
            time.sleep(0.05)
        logged = service.log_writer.log.read_day(PARITY_DAY)

    assert [r["flight_key"] for r in logged] == flight_ids
    assert [r["request_id"] for r in logged] == [a["request_id"] for a in answers]
    assert [r["score"] for r in logged] == [a["predictions"][0]["risk"] for a in answers]
    assert all(r["model_version"] == "1" and r["role"] == "champion" and r["latency_ms"] > 0 for r in logged)
    assert '"origin_recent_departures"' in logged[0]["features"] and logged[0]["served_at"]
