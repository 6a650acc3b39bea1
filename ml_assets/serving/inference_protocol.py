"""The Open Inference Protocol (KServe v2) for clients that send full feature vectors: its pydantic
models and the conversion of named input tensors (one per `flight_features` column) to rows."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from ml_assets.flights.feature_spec import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES

OUTPUT = "disruption_probability"
NUMERIC_TYPES = {"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8", "BOOL"}
Parameters = dict[str, StrictFloat | StrictInt | StrictBool | str]


class ServerLiveResponse(BaseModel):
    live: bool


class ServerReadyResponse(BaseModel):
    ready: bool
    reason: str | None = None


class ServerMetadataResponse(BaseModel):
    name: str
    version: str
    extensions: list[str]


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadataResponse(BaseModel):
    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ModelReadyResponse(BaseModel):
    name: str
    ready: bool


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    shape: list[int] = Field(min_length=1, max_length=2)
    datatype: str
    parameters: Parameters | None = None
    data: list[StrictFloat | StrictInt | StrictBool | str | None]


class RequestOutput(BaseModel):
    name: str
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=200)
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1, max_length=len(FEATURES))
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: Literal["FP64"]
    data: list[float]


class InferenceResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_version: str | None = None
    id: str
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class InvalidInput(ValueError):
    """An inference request whose tensors do not describe `flight_features` rows."""


def model_inputs() -> list[MetadataTensor]:
    return [
        MetadataTensor(name=c, datatype="BYTES" if c in CATEGORICAL_FEATURES else "FP64", shape=[-1])
        for c in FEATURES
    ]


def rows_from_inputs(inputs: list[RequestInput], max_rows: int) -> tuple[list[tuple], list[list[float]]]:
    """(categorical rows, numeric rows) from one tensor per feature, each of shape [n] or [n, 1];
    a null in a numeric tensor is a missing value."""
    by_name = {}
    for tensor in inputs:
        if tensor.name in by_name:
            raise InvalidInput(f"input {tensor.name!r} is given twice")
        if tensor.name not in FEATURES:
            raise InvalidInput(f"unknown input {tensor.name!r}: the inputs are the features {FEATURES}")
        by_name[tensor.name] = tensor
    missing = [c for c in FEATURES if c not in by_name]
    if missing:
        raise InvalidInput(f"missing inputs: {missing}")
    rows = {t.shape[0] for t in inputs}
    if len(rows) != 1:
        raise InvalidInput(f"every input needs the same number of rows, got shapes {sorted(rows)}")
    (n,) = rows
    if not 1 <= n <= max_rows:
        raise InvalidInput(f"{n} rows: an inference request takes 1 to {max_rows} rows")
    for tensor in inputs:
        if tensor.shape not in ([n], [n, 1]) or len(tensor.data) != n:
            raise InvalidInput(f"input {tensor.name!r}: shape {tensor.shape} with {len(tensor.data)} values, expected [{n}] or [{n}, 1]")
        allowed = {"BYTES"} if tensor.name in CATEGORICAL_FEATURES else NUMERIC_TYPES
        if tensor.datatype not in allowed:
            raise InvalidInput(f"input {tensor.name!r}: datatype {tensor.datatype!r}, expected one of {sorted(allowed)}")
    categorical = list(zip(*(_strings(by_name[c]) for c in CATEGORICAL_FEATURES)))
    numeric = [list(values) for values in zip(*(_numbers(by_name[c]) for c in NUMERIC_FEATURES))]
    return categorical, numeric


def _strings(tensor: RequestInput) -> list[str | None]:
    if any(v is not None and not isinstance(v, str) for v in tensor.data):
        raise InvalidInput(f"input {tensor.name!r}: BYTES values must be strings or null")
    return list(tensor.data)


def _numbers(tensor: RequestInput) -> list[float]:
    values = []
    for v in tensor.data:
        if v is None:
            values.append(math.nan)
        elif isinstance(v, str) or not math.isfinite(float(v)):
            raise InvalidInput(f"input {tensor.name!r}: {v!r} is not a finite number or null")
        else:
            values.append(float(v))
    return values
