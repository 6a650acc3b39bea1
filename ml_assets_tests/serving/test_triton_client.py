"""Open Inference Protocol conformance, shown with a real client: `tritonclient.http`, unmodified,
against the service on uvicorn (127.0.0.1, a free port), with the binary tensor data extension and
with JSON tensors, missing values as NaN, versioned routes, requested outputs and decoded errors."""

import numpy as np
import polars as pl
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from ml_assets.flights.feature_spec import CATEGORICAL_FEATURES, FEATURES, FEATURES_TABLE, NUMERIC_FEATURES
from ml_assets.models.scoring import load_scoring_model
from ml_assets.serving.app import create_app
from ml_assets_tests.serving.conftest import PARITY_DAY, served

MODEL = "flight_disruption"
NUMPY_TYPE = {"FP64": np.float64, "BYTES": np.object_}


@pytest.fixture(scope="module")
def offline(real_lake) -> pl.DataFrame:
    rows = real_lake.scan(FEATURES_TABLE, PARITY_DAY, PARITY_DAY).collect().sort("flight_id").head(40)
    assert rows.select(pl.any_horizontal(pl.col(NUMERIC_FEATURES).is_null())).to_series().any()  # missing values
    return rows


@pytest.fixture
def client(make_service):
    with served(create_app(make_service(token="write-token", read_token="read-token"))) as base:
        with triton.InferenceServerClient(base.removeprefix("http://")) as client:
            yield client


def read() -> dict:
    """The read token's header (a new dict each call: the client adds its own headers to the one it is given)."""
    return {"Authorization": "Bearer read-token"}


def tensors(client, rows: pl.DataFrame, binary: bool, shape_of=lambda n: [n]) -> list:
    """One InferInput per input the model metadata lists, typed as it says; nulls become NaN."""
    inputs = []
    for spec in client.get_model_metadata(MODEL, headers=read())["inputs"]:
        column = rows.get_column(spec["name"])
        if spec["datatype"] == "BYTES":
            values = np.array([v.encode() for v in column.to_list()], dtype=np.object_)
        else:
            values = column.cast(pl.Float64).fill_null(float("nan")).to_numpy()
        values = values.astype(NUMPY_TYPE[spec["datatype"]]).reshape(shape_of(rows.height))
        tensor = triton.InferInput(spec["name"], list(values.shape), spec["datatype"])
        inputs.append(tensor.set_data_from_numpy(values, binary_data=binary))
    return inputs


def test_health_and_metadata_through_the_client(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1")
    assert not client.is_model_ready(MODEL, "7") and not client.is_model_ready("other")
    metadata = client.get_model_metadata(MODEL, headers=read())
    assert metadata["versions"] == ["1"] and metadata["platform"] == "lightgbm"
    assert [i["name"] for i in metadata["inputs"]] == FEATURES
    assert {i["datatype"] for i in metadata["inputs"]} == {"BYTES", "FP64"}
    assert all("NaN" in i["parameters"]["missing"] for i in metadata["inputs"] if i["datatype"] == "FP64")
    assert client.get_model_metadata(MODEL, "1", headers=read()) == metadata
    assert "binary_tensor_data" in client.get_server_metadata(headers=read())["extensions"]


@pytest.mark.parametrize("binary_inputs", [True, False], ids=["binary tensors", "JSON tensors"])
@pytest.mark.parametrize("binary_output", [None, True, False], ids=["default output", "binary output", "JSON output"])
def test_infer_scores_like_the_model_with_nan_as_missing(client, offline, registry, binary_inputs, binary_output):
    outputs = None if binary_output is None else [triton.InferRequestedOutput("disruption_probability", binary_data=binary_output)]

    result = client.infer(MODEL, tensors(client, offline, binary_inputs), outputs=outputs, request_id="q1", headers=read())

    expected = load_scoring_model(registry, "1").predict_proba(offline)
    np.testing.assert_allclose(result.as_numpy("disruption_probability"), expected, atol=1e-12)
    output = result.get_output("disruption_probability")
    assert ("binary_data_size" in output.get("parameters", {})) == (binary_output is not False)
    assert result.get_response()["id"] == "q1" and result.get_response()["model_version"] == "1"


def test_versioned_infer_and_column_shaped_tensors(client, offline, registry):
    rows = offline.head(7)

    result = client.infer(MODEL, tensors(client, rows, True, lambda n: [n, 1]), model_version="1", headers=read())

    expected = load_scoring_model(registry, "1").predict_proba(rows)
    np.testing.assert_allclose(result.as_numpy("disruption_probability"), expected, atol=1e-12)
    with pytest.raises(InferenceServerException) as other:
        client.infer(MODEL, tensors(client, rows, True), model_version="7", headers=read())
    assert other.value.status() == "404" and "version '7'" in other.value.message() and "version '1'" in other.value.message()


def test_the_client_decodes_the_errors(client, offline):
    inputs = tensors(client, offline.head(3), True)

    def refused(**kwargs) -> InferenceServerException:
        with pytest.raises(InferenceServerException) as raised:
            client.infer(**{"model_name": MODEL, "inputs": inputs, "headers": read()} | kwargs)
        return raised.value

    unknown_output = refused(outputs=[triton.InferRequestedOutput("risk")])
    missing = refused(inputs=inputs[1:])
    duplicated = refused(inputs=[*inputs, inputs[10]])
    no_model = refused(model_name="other")
    no_token = refused(headers=None)
    wrong_token = refused(headers={"Authorization": "Bearer nope"})

    assert unknown_output.status() == "400" and "unknown requested output 'risk'" in unknown_output.message()
    assert missing.status() == "400" and "missing inputs: ['carrier']" in missing.message()
    assert duplicated.status() == "400" and f"input {FEATURES[10]!r} is given twice" in duplicated.message()
    assert no_model.status() == "404" and "model 'other' not found" in no_model.message()
    assert no_token.status() == wrong_token.status() == "401" and "bearer token" in no_token.message()


def test_other_numeric_datatypes_and_infinity(client, offline, registry):
    rows = offline.head(5)
    inputs = tensors(client, rows, True)
    hour = FEATURES.index("sched_hour")
    as_int = rows.get_column("sched_hour").cast(pl.Int64).to_numpy()
    inputs[hour] = triton.InferInput("sched_hour", [5], "INT64").set_data_from_numpy(as_int)

    result = client.infer(MODEL, inputs, headers=read())

    expected = load_scoring_model(registry, "1").predict_proba(rows)
    np.testing.assert_allclose(result.as_numpy("disruption_probability"), expected, atol=1e-12)
    distance = FEATURES.index("distance")
    for binary in (True, False):
        infinite = rows.get_column("distance").to_numpy().copy()
        infinite[2] = np.inf
        inputs[distance] = triton.InferInput("distance", [5], "FP64").set_data_from_numpy(infinite, binary_data=binary)
        with pytest.raises(InferenceServerException) as raised:
            client.infer(MODEL, inputs, headers=read())
        assert raised.value.status() == "400" and "input 'distance'[2]" in raised.value.message()


def test_categorical_tensors_must_be_bytes(client, offline):
    inputs = tensors(client, offline.head(2), True)
    origin = FEATURES.index(CATEGORICAL_FEATURES[1])
    inputs[origin] = triton.InferInput("origin", [2], "FP64").set_data_from_numpy(np.array([1.0, 2.0]))

    with pytest.raises(InferenceServerException) as raised:
        client.infer(MODEL, inputs, headers=read())

    assert raised.value.status() == "400" and "input 'origin': datatype 'FP64', expected one of ['BYTES']" in raised.value.message()


def test_the_torch_champion_takes_nan_as_missing_too(make_service, registry, offline):
    registry.promote("2", "the torch model answers", moved_by="tests")
    with served(create_app(make_service())) as base, triton.InferenceServerClient(base.removeprefix("http://")) as client:
        result = client.infer(MODEL, tensors(client, offline, True))
        metadata = client.get_model_metadata(MODEL)

    assert metadata["platform"] == "torch_tabular" and result.get_response()["model_version"] == "2"
    expected = load_scoring_model(registry, "2").predict_proba(offline)
    np.testing.assert_allclose(result.as_numpy("disruption_probability"), expected, atol=1e-6)


@pytest.mark.parametrize(
    "values",
    [{"carrier": ["ZZ", "00"]}, {"dest": ["Q" * 200, ""]}, {"distance": [1e308, -1e308]}, {"wx_temp": [None, None]}],
    ids=["unknown carriers", "odd airports", "extreme numbers", "all missing"],
)
def test_odd_but_valid_values_are_scored(client, offline, values):
    rows = offline.head(2)
    inputs = tensors(client, rows, True)
    for name, data in values.items():
        datatype = "BYTES" if name in CATEGORICAL_FEATURES else "FP64"
        inputs[FEATURES.index(name)] = triton.InferInput(name, [2], datatype).set_data_from_numpy(
            np.array(data, dtype=NUMPY_TYPE[datatype]) if datatype == "BYTES" else np.array(data, dtype=float), binary_data=False
        )

    scores = client.infer(MODEL, inputs, headers=read()).as_numpy("disruption_probability")

    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
