"""Malformed requests, sent as raw bytes over one keep-alive connection to the service on uvicorn:
each is a 4xx naming the field and rule, in a bounded body (`{"detail"}` on /v1, `{"error"}` on
/v2), and the connection stays open for the next request."""

import gzip
import json

import polars as pl
import pytest

from ml_assets.flights.feature_spec import CATEGORICAL_FEATURES, FEATURES, FEATURES_TABLE
from ml_assets.serving.app import create_app
from ml_assets_tests.serving.conftest import PARITY_DAY, served
from ml_assets_tests.serving.keep_alive import JSON, KeepAlive

FLIGHT = {"carrier": "AA", "flight": 3, "origin": "JFK", "dest": "LAX", "sched_dep": "2013-02-08T12:00:00-05:00"}
MAX_ERROR_BYTES = 4096
INFER = "/v2/models/flight_disruption/infer"


@pytest.fixture(scope="module")
def rows(real_lake) -> pl.DataFrame:
    return real_lake.scan(FEATURES_TABLE, PARITY_DAY, PARITY_DAY).collect().sort("flight_id").head(4)


@pytest.fixture
def connection(make_service):
    with served(create_app(make_service(max_batch=50))) as base:
        yield KeepAlive(base)


def v1_problems(status_headers_body, status=422) -> list[dict]:
    code, _, body = status_headers_body
    assert code == status and len(body) < MAX_ERROR_BYTES, (code, body[:300])
    return json.loads(body)["detail"]


def v2_error(status_headers_body, status=400) -> str:
    code, _, body = status_headers_body
    assert code == status and len(body) < MAX_ERROR_BYTES, (code, body[:300])
    (message,) = json.loads(body).values()  # {"error": "..."} and nothing else
    assert json.loads(body)["error"] == message
    return message


@pytest.mark.parametrize(
    ("change", "field", "kind"),
    [
        ({"flight": True}, "flight", "int_type"),
        ({"flight": 3.0}, "flight", "int_type"),
        ({"flight": "3"}, "flight", "int_type"),
        ({"sched_dep": 1360342800}, "sched_dep", "value_error"),
        ({"carrier": 12}, "carrier", "string_type"),
    ],
)
def test_strict_types_on_predict(connection, change, field, kind):
    (problem,) = v1_problems(connection.post_json("/v1/predict", json.dumps({"flights": [FLIGHT | change]})))

    assert problem["loc"] == ["body", "flights", 0, field] and problem["type"] == kind


def test_return_features_must_be_a_boolean(connection):
    (problem,) = v1_problems(connection.post_json("/v1/predict", json.dumps({"flights": [FLIGHT], "return_features": "yes"})))

    assert problem["loc"] == ["body", "return_features"] and problem["type"] == "bool_type"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("path", ["/v1/predict", "/v1/events"])
def test_nan_and_infinity_literals_are_refused_with_their_position(connection, literal, path):
    text = '{"flights": [{"carrier": "AA", "flight": %s}]}' % literal
    if path == "/v1/events":
        text = '{"events": [{"type": "weather", "event_id": "w", "origin": "JFK", "observed_at": "2013-02-08T08:00:00Z", "temp": %s}]}' % literal

    (problem,) = v1_problems(connection.post_json(path, text))

    position = text.index(literal)
    assert problem["type"] == "json_invalid" and problem["loc"] == ["body", position]
    assert problem["msg"] == f"invalid JSON at line 1 column {position + 1} (char {position}): {literal} is not JSON: numbers must be finite"


def test_a_nan_inside_a_string_is_just_text(connection):
    (problem,) = v1_problems(connection.post_json("/v1/predict", json.dumps({"flights": [FLIGHT | {"carrier": "NaN"}]})))

    assert problem["loc"] == ["body", "flights", 0, "carrier"] and problem["type"] == "string_pattern_mismatch"


def test_a_body_that_is_not_utf8_is_refused_at_its_byte(connection):
    body = '{"flights": [{"carrier": "'.encode() + b"\xff\xfe" + b'"}]}'

    (problem,) = v1_problems(connection.post_json("/v1/predict", body))

    assert problem["type"] == "json_invalid" and problem["loc"] == ["body", 26]
    assert "the body is not UTF-8: byte 0xff at offset 26" in problem["msg"]


def test_a_broken_body_names_line_and_column(connection):
    (problem,) = v1_problems(connection.post_json("/v1/predict", '{"flights": [\n  {"carrier": "AA",,}]}'))

    assert problem["loc"] == ["body", 33] and problem["msg"].startswith("invalid JSON at line 2 column 20 (char 33): ")


@pytest.mark.parametrize(
    ("text", "at", "says"),
    [
        ('{"flights": [' + "1" * 5000 + "]}", 13, "a number of too many digits"),
        ('{"flights": ' + "[" * 100_000 + "]" * 100_000 + "}", 12 + 99, "arrays and objects nested deeper than 100 levels"),
    ],
    ids=["a 5000-digit number", "100000 nested arrays"],
)
@pytest.mark.parametrize("path", ["/v1/predict", INFER])
def test_bodies_beyond_the_parser_are_refused_not_failed(connection, path, text, at, says):
    answer = connection.post_json(path, text)

    if path == INFER:
        assert v2_error(answer).startswith(f"invalid JSON at line 1 column {at + 1} (char {at}): {says}")
    else:
        (problem,) = v1_problems(answer)
        assert problem["loc"] == ["body", at] and says in problem["msg"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_v1_bodies_must_be_sent_as_json(connection, content_type):
    code, _, body = connection.post_json("/v1/predict", json.dumps({"flights": [FLIGHT]}), {"Content-Type": content_type} if content_type else {})

    assert code == 415 and json.loads(body)["detail"].startswith("Content-Type must be application/json")


@pytest.mark.parametrize("path", ["/v1/predict", INFER])
def test_a_compressed_body_is_refused_by_name(connection, path):
    code, _, body = connection.post_json(path, gzip.compress(b"{}"), JSON | {"Content-Encoding": "gzip"})

    assert code == 415 and "Content-Encoding 'gzip' is not supported" in body.decode()


def test_a_huge_field_gets_a_short_answer(connection):
    huge = "A" * 5_000_000

    (problem,) = v1_problems(connection.post_json("/v1/predict", json.dumps({"flights": [FLIGHT | {"carrier": huge}]})))

    assert problem["loc"] == ["body", "flights", 0, "carrier"]
    assert problem["input"] == "A" * 60 + "... (5000000 characters)"


def test_many_problems_are_listed_up_to_a_bound(connection):
    answer = connection.post_json("/v1/predict", json.dumps({"flights": [FLIGHT | {"flight": "x" * 1000}] * 50}))

    listed = v1_problems(answer)
    assert len(listed) == 20 and json.loads(answer[2])["more_problems"] == 30


def inference_body(rows: pl.DataFrame, nested: bool = False, change: dict | None = None) -> dict:
    inputs = []
    for name in FEATURES:
        text = name in CATEGORICAL_FEATURES
        values = rows.get_column(name).cast(pl.String if text else pl.Float64).to_list()
        tensor = {"name": name, "datatype": "BYTES" if text else "FP64", "shape": [rows.height, 1] if nested else [rows.height],
                  "data": [[v] for v in values] if nested else values}  # fmt: skip
        inputs.append(tensor | (change or {}).get(name, {}))
    return {"inputs": inputs}


def scores(answer) -> list[float]:
    code, _, body = answer
    assert code == 200, body[:300]
    return json.loads(body)["outputs"][0]["data"]


def test_nested_data_nan_and_null_and_no_content_type_on_v2(connection, rows):
    flat = scores(connection.post_json(INFER, json.dumps(inference_body(rows))))
    nested = scores(connection.post_json(INFER, json.dumps(inference_body(rows, nested=True)), {}))
    nulls = json.dumps(inference_body(rows, change={"wx_visib": {"data": [None] * rows.height}}))
    nans = nulls.replace('"name": "wx_visib", "datatype": "FP64", "shape": [4], "data": [null, null, null, null]',
                         '"name": "wx_visib", "datatype": "FP64", "shape": [4], "data": [NaN, NaN, NaN, NaN]')  # fmt: skip

    assert nested == flat and len(flat) == rows.height
    assert "NaN" in nans and scores(connection.post_json(INFER, nans, {})) == scores(connection.post_json(INFER, nulls))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"distance": {"data": [[1.0, 2.0]] * 4, "shape": [4, 2]}}, "input 'distance': shape [4, 2], expected [4] or [4, 1]"),
        ({"distance": {"data": [[1.0], [2.0]], "shape": [4, 1]}}, "input 'distance': nested data of 2 rows of [1] values does not match shape [4, 1]"),
        ({"distance": {"data": [[1.0], 2.0, [3.0], [4.0]], "shape": [4, 1]}}, "input 'distance': data mixes arrays and values"),
        ({"distance": {"data": [1.0, [2.0], 3.0, 4.0]}}, "input 'distance'[1]: 'list of 1 items' is not a FP64 value"),
        ({"distance": {"datatype": "INT64", "data": [1, float("nan"), 3, 4]}}, "input 'distance'[1]: nan is refused"),
        ({"distance": {"datatype": "BOOL", "data": [True, 1, False, True]}}, "input 'distance'[1]: 1 is not a BOOL value"),
        ({"distance": {"data": [1.0, 2.0, 3.0]}}, "input 'distance': shape [4] holds 4 values, the data has 3"),
        ({"distance": {"data": [1.0, True, 3.0, 4.0]}}, "input 'distance'[1]: True is not a FP64 value"),
        ({"distance": {"data": [1.0, "2", 3.0, 4.0]}}, "input 'distance'[1]: '2' is not a FP64 value"),
        ({"distance": {"datatype": "INT64", "data": [1, 2.5, 3, 4]}}, "input 'distance'[1]: 2.5 is not a INT64 value"),
        ({"carrier": {"data": ["AA", 1, "AA", "AA"]}}, "input 'carrier'[1]: BYTES values are strings or null, got 1"),
        ({"distance": {"datatype": "FP128"}}, "input 'distance': datatype 'FP128', expected one of"),
        ({"distance": {"data": None}}, "input 'distance': no data"),
        ({"distance": {"shape": [-1]}}, "inputs[6].shape[0]: Input should be greater than or equal to 0"),
        ({"distance": {"name": "distance", "extra": 1}}, "inputs[6].extra: Extra inputs are not permitted"),
        ({"distance": {"shape": "4"}}, "inputs[6].shape: Input should be a valid list"),
    ],
)
def test_tensor_problems_are_400_naming_the_input(connection, rows, change, says):
    assert says in v2_error(connection.post_json(INFER, json.dumps(inference_body(rows, change=change))))


def test_request_level_problems_on_v2(connection, rows):
    good = inference_body(rows)
    twice = {"inputs": [*good["inputs"], good["inputs"][30]]}
    unknown_output = good | {"outputs": [{"name": "risk"}]}

    assert f"input {FEATURES[30]!r} is given twice" in v2_error(connection.post_json(INFER, json.dumps(twice)))
    assert "unknown requested output 'risk'" in v2_error(connection.post_json(INFER, json.dumps(unknown_output)))
    assert "inputs: Field required" in v2_error(connection.post_json(INFER, "{}"))
    assert v2_error(connection.post_json(INFER, '{"inputs": [')).startswith("invalid JSON at line 1 column 13 (char 12)")
    assert "not UTF-8: byte 0xc3 at offset 2" in v2_error(connection.post_json(INFER, b'{"\xc3('))
    assert "input 'distance'[0]: inf is refused" in v2_error(
        connection.post_json(INFER, json.dumps(inference_body(rows, change={"distance": {"data": [float("inf")] * 4}})))
    )
    assert "Content-Type must be" in v2_error(connection.post_json(INFER, json.dumps(good), {"Content-Type": "text/plain"}), 415)


@pytest.mark.parametrize(
    ("header_length", "binary", "says"),
    [
        ("abc", b"", "Inference-Header-Content-Length must be the byte length of the JSON header"),
        ("0", b"", "Inference-Header-Content-Length must be the byte length of the JSON header"),
        ("999999", b"", "Inference-Header-Content-Length must be the byte length of the JSON header"),
        ("\u00b2", b"", "Inference-Header-Content-Length must be the byte length of the JSON header"),  # a digit to str.isdigit
        ("9" * 5000, b"", "Inference-Header-Content-Length must be the byte length of the JSON header"),
        (None, b"\x00" * 8, "8 binary bytes after the JSON header belong to no input"),
    ],
)
def test_binary_extension_framing_problems(connection, rows, header_length, binary, says):
    header = json.dumps(inference_body(rows)).encode()
    headers = {"Inference-Header-Content-Length": header_length or str(len(header))}

    assert says in v2_error(connection.post_json(INFER, header + binary, headers))


def test_binary_tensor_problems(connection, rows):
    def send(tensor_change: dict, raw: bytes) -> str:
        body = inference_body(rows, change={"carrier": tensor_change})
        header = json.dumps(body).encode()
        return v2_error(connection.post_json(INFER, header + raw, {"Inference-Header-Content-Length": str(len(header))}))

    cut = send({"data": None, "parameters": {"binary_data_size": 5}}, b"\x02\x00\x00\x00A")
    short = send({"data": None, "parameters": {"binary_data_size": 3}}, b"\x02\x00\x00")
    past = send({"data": None, "parameters": {"binary_data_size": 64}}, b"\x02\x00\x00\x00AA")
    both = send({"parameters": {"binary_data_size": 6}}, b"\x02\x00\x00\x00AA")
    not_text = send({"data": None, "parameters": {"binary_data_size": 6}, "shape": [1]}, b"\x02\x00\x00\x00\xff\xfe")
    shared = send({"data": None, "parameters": {"shared_memory_region": "r"}}, b"")

    assert "input 'carrier': BYTES element 0 of 2 bytes is cut off" in cut
    assert "input 'carrier': a BYTES element's 4-byte length is cut off at byte 0" in short
    assert "binary_data_size 64 reaches past the body's 6 binary bytes" in past
    assert "both `data` and parameters.binary_data_size are given" in both
    assert "input 'carrier': BYTES element 0 is not UTF-8" in not_text
    assert "shared memory is not supported" in shared


def test_every_v2_route_answers_errors_as_error(connection):
    assert "not found" in v2_error(connection.send("GET", "/v2/models/other"), 404)
    assert "version '9'" in v2_error(connection.send("GET", "/v2/models/flight_disruption/versions/9"), 404)
    assert "version '9'" in v2_error(connection.send("GET", "/v2/models/flight_disruption/versions/9/ready"), 404)
    assert "version '9'" in v2_error(connection.post_json("/v2/models/flight_disruption/versions/9/infer", "{}"), 404)
    assert v2_error(connection.send("GET", "/v2/nothing/here"), 404) == "Not Found"
    assert v2_error(connection.send("GET", INFER), 405) == "Method Not Allowed"
    assert v1_problems(connection.send("GET", "/v1/nothing"), 404) == "Not Found"
