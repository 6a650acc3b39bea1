"""The Open Inference Protocol (KServe v2) for clients that send full feature vectors: its pydantic
models, the reading of a request (JSON tensors, nested or flat, or the binary tensor data
extension) into `flight_features` rows, and the encoding of the answer.

One input tensor per feature column, of shape [n] or [n, 1]: BYTES for the categorical
features, FP64 (or another numeric datatype) for the numeric ones. A missing numeric value is
NaN (in binary or JSON tensors) or null (JSON); ±Infinity is refused.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError

from ml_assets.flights.feature_spec import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES
from ml_assets.serving.request_body import excerpt, is_json, parse_json, shortened

OUTPUT = "disruption_probability"
HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_CONTENT_TYPE = "application/octet-stream"
NUMERIC_DTYPES = {
    "FP64": "<f8", "FP32": "<f4", "FP16": "<f2", "INT64": "<i8", "INT32": "<i4", "INT16": "<i2", "INT8": "i1",
    "UINT64": "<u8", "UINT32": "<u4", "UINT16": "<u2", "UINT8": "u1", "BOOL": "?",
}  # fmt: skip
FLOATING = {"FP64", "FP32", "FP16"}
MISSING_VALUES = "NaN (binary or JSON tensors) or null (JSON tensors) is a missing value; Infinity is refused"
MAX_NAME = 200

Scalar = StrictFloat | StrictInt | StrictBool | str | None
Parameters = dict[Annotated[str, Field(max_length=MAX_NAME)], StrictFloat | StrictInt | StrictBool | str]


class InvalidInput(ValueError):
    """An inference request that does not describe `flight_features` rows (a 400)."""


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
    parameters: dict[str, str] | None = None


class ModelMetadataResponse(BaseModel):
    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ModelReadyResponse(BaseModel):
    name: str
    ready: bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RequestInput(_Strict):
    name: str = Field(max_length=MAX_NAME)
    shape: list[Annotated[int, Field(ge=0, le=10**9)]] = Field(min_length=1, max_length=2)
    datatype: str = Field(max_length=16)
    parameters: Parameters | None = None
    data: list[Scalar | list[Scalar]] | None = Field(
        None, description="row-major, flat or nested as the shape; absent when the tensor is binary"
    )


class RequestOutput(_Strict):
    name: str = Field(max_length=MAX_NAME)
    parameters: Parameters | None = None


class InferenceRequest(_Strict):
    id: str | None = Field(None, max_length=MAX_NAME)
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1, max_length=4 * len(FEATURES))
    outputs: list[RequestOutput] | None = Field(None, max_length=8)


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


@dataclass(frozen=True)
class InferenceRows:
    """A request read: its id, the rows, and how the output is to be sent."""

    request_id: str | None
    categorical: list[tuple]
    numeric: np.ndarray  # rows x NUMERIC_FEATURES, NaN = missing
    binary_output: bool


def model_inputs() -> list[MetadataTensor]:
    return [
        MetadataTensor(name=c, datatype="BYTES", shape=[-1])
        if c in CATEGORICAL_FEATURES
        else MetadataTensor(name=c, datatype="FP64", shape=[-1], parameters={"missing": MISSING_VALUES})
        for c in FEATURES
    ]


def model_outputs() -> list[MetadataTensor]:
    return [MetadataTensor(name=OUTPUT, datatype="FP64", shape=[-1])]


def accepted_content_type(content_type: str | None) -> bool:
    """JSON, binary (the extension's header then tensors) or none, as tritonclient sends it."""
    return not content_type or is_json(content_type) or content_type.split(";")[0].strip().lower() == BINARY_CONTENT_TYPE


def read_request(body: bytes, header_length: str | None, max_rows: int) -> InferenceRows:
    """The rows of an infer request body; raises InvalidInput naming the field and rule."""
    header, binary = _split(body, header_length)
    try:
        document = parse_json(header, constants=float)  # NaN: missing; ±Infinity: refused per tensor
    except json.JSONDecodeError as error:
        raise InvalidInput(f"invalid JSON at line {error.lineno} column {error.colno} (char {error.pos}): {error.msg}") from None
    try:
        request = InferenceRequest.model_validate(document)
    except ValidationError as error:
        raise InvalidInput(_validation_message(error)) from None
    columns = _columns(request.inputs, binary)
    binary_output = _binary_output(request)
    return InferenceRows(request.id, *_rows(request.inputs, columns, max_rows), binary_output)


def encode_response(response: InferenceResponse, binary: bool) -> tuple[bytes, dict[str, str]]:
    """The response body and headers: JSON, or a JSON header followed by the raw little-endian
    outputs (the binary tensor data extension)."""
    if not binary:
        return response.model_dump_json(exclude_none=True).encode(), {"Content-Type": "application/json"}
    raw = [np.asarray(o.data, dtype="<f8").tobytes() for o in response.outputs]
    header = response.model_dump(exclude_none=True)
    for output, data in zip(header["outputs"], raw):
        del output["data"]
        output["parameters"] = {"binary_data_size": len(data)}
    head = json.dumps(header, separators=(",", ":")).encode()
    return head + b"".join(raw), {"Content-Type": BINARY_CONTENT_TYPE, HEADER_LENGTH: str(len(head))}


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not re.fullmatch(r"[0-9]{1,12}", header_length) or not 0 < int(header_length) <= len(body):
        raise InvalidInput(
            f"{HEADER_LENGTH} must be the byte length of the JSON header, 1 to {len(body)} (given: {excerpt(header_length)!r})"
        )
    return body[: int(header_length)], body[int(header_length) :]


def _validation_message(error: ValidationError) -> str:
    shown = error.errors(include_url=False)[:10]
    text = "; ".join(f"{_where(e['loc'])}: {shortened(e['msg'])}" for e in shown)
    return text + (f"; and {error.error_count() - len(shown)} more" if error.error_count() > len(shown) else "")


def _where(loc: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{excerpt(str(p))}" for p in loc).lstrip(".") or "body"


def _columns(inputs: list[RequestInput], binary: bytes) -> list[list | np.ndarray]:
    """Each input's flat values: from its `data`, or from its slice of the binary part."""
    columns, offset = [], 0
    for tensor in inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if any(k.startswith("shared_memory") for k in tensor.parameters or {}):
            raise InvalidInput(f"input {tensor.name!r}: shared memory is not supported; send the data in the body")
        if size is None:
            if tensor.data is None:
                raise InvalidInput(f"input {tensor.name!r}: no data (neither `data` nor parameters.binary_data_size)")
            columns.append(_flat(tensor))
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInput(f"input {tensor.name!r}: parameters.binary_data_size must be a byte count, got {excerpt(size)!r}")
        if tensor.data is not None:
            raise InvalidInput(f"input {tensor.name!r}: both `data` and parameters.binary_data_size are given")
        if offset + size > len(binary):
            raise InvalidInput(
                f"input {tensor.name!r}: binary_data_size {size} reaches past the body's {len(binary)} binary bytes"
            )
        columns.append(_decode_binary(tensor, binary[offset : offset + size]))
        offset += size
    if offset != len(binary):
        raise InvalidInput(f"{len(binary) - offset} binary bytes after the JSON header belong to no input")
    return columns


def _flat(tensor: RequestInput) -> list:
    """Row-major values of a JSON tensor, nested as its shape or flat (a list among flat values is
    refused with the other wrong types)."""
    data = tensor.data
    if not data or not isinstance(data[0], list):
        return data
    if not all(isinstance(row, list) for row in data):
        raise InvalidInput(f"input {tensor.name!r}: data mixes arrays and values; nest every row or none")
    if len(tensor.shape) != 2 or len(data) != tensor.shape[0] or any(len(row) != tensor.shape[1] for row in data):
        lengths = sorted({len(row) for row in data})
        raise InvalidInput(
            f"input {tensor.name!r}: nested data of {len(data)} rows of {lengths} values does not match shape {tensor.shape}"
        )
    return [v for row in data for v in row]


def _decode_binary(tensor: RequestInput, raw: bytes) -> list | np.ndarray:
    """BYTES elements as strings, numbers as float64 (NaN: missing)."""
    if tensor.datatype == "BYTES":
        values, at = [], 0
        while at < len(raw):
            if at + 4 > len(raw):
                raise InvalidInput(f"input {tensor.name!r}: a BYTES element's 4-byte length is cut off at byte {at}")
            (length,) = struct.unpack_from("<I", raw, at)
            if at + 4 + length > len(raw):
                raise InvalidInput(f"input {tensor.name!r}: BYTES element {len(values)} of {length} bytes is cut off")
            try:
                values.append(raw[at + 4 : at + 4 + length].decode("utf-8"))
            except UnicodeDecodeError:
                raise InvalidInput(f"input {tensor.name!r}: BYTES element {len(values)} is not UTF-8") from None
            at += 4 + length
        return values
    dtype = NUMERIC_DTYPES.get(tensor.datatype)
    if dtype is None:
        raise InvalidInput(f"input {tensor.name!r}: datatype {excerpt(tensor.datatype)!r} is not one of {sorted(NUMERIC_DTYPES)} or BYTES")
    width = np.dtype(dtype).itemsize
    if len(raw) % width:
        raise InvalidInput(f"input {tensor.name!r}: {len(raw)} bytes is not a whole number of {tensor.datatype} values ({width} bytes)")
    return np.frombuffer(raw, dtype=dtype).astype(np.float64)


def _rows(inputs: list[RequestInput], columns: list[list], max_rows: int) -> tuple[list[tuple], np.ndarray]:
    """(categorical rows, numeric matrix) from one tensor per feature, each of shape [n] or [n, 1]."""
    by_name: dict[str, tuple[RequestInput, list]] = {}
    for tensor, values in zip(inputs, columns):
        if tensor.name in by_name:
            raise InvalidInput(f"input {tensor.name!r} is given twice")
        if tensor.name not in FEATURES:
            raise InvalidInput(f"unknown input {excerpt(tensor.name)!r}: the inputs are the features {FEATURES}")
        by_name[tensor.name] = (tensor, values)
    missing = [c for c in FEATURES if c not in by_name]
    if missing:
        raise InvalidInput(f"missing inputs: {missing}")
    rows = {t.shape[0] for t in inputs}
    if len(rows) != 1:
        raise InvalidInput(f"every input needs the same number of rows, got {sorted(rows)} (first dimensions of the shapes)")
    (n,) = rows
    if not 1 <= n <= max_rows:
        raise InvalidInput(f"{n} rows: an inference request takes 1 to {max_rows} rows")
    for tensor, values in by_name.values():
        if tensor.shape not in ([n], [n, 1]):
            raise InvalidInput(f"input {tensor.name!r}: shape {tensor.shape}, expected [{n}] or [{n}, 1]")
        if len(values) != n:
            raise InvalidInput(f"input {tensor.name!r}: shape {tensor.shape} holds {n} values, the data has {len(values)}")
        allowed = {"BYTES"} if tensor.name in CATEGORICAL_FEATURES else set(NUMERIC_DTYPES)
        if tensor.datatype not in allowed:
            raise InvalidInput(f"input {tensor.name!r}: datatype {excerpt(tensor.datatype)!r}, expected one of {sorted(allowed)}")
    categorical = list(zip(*(_strings(*by_name[c]) for c in CATEGORICAL_FEATURES)))
    columns = [_numbers(*by_name[c]) for c in NUMERIC_FEATURES]
    numeric = np.ascontiguousarray(np.array(columns, dtype=np.float64).T)  # None: NaN
    infinite = np.argwhere(np.isinf(numeric))
    if infinite.size:
        row, column = infinite[0]
        raise InvalidInput(f"input {NUMERIC_FEATURES[column]!r}[{row}]: {numeric[row, column]} is refused ({MISSING_VALUES})")
    return categorical, numeric


def _strings(tensor: RequestInput, values: list) -> list[str | None]:
    for i, v in enumerate(values):
        if v is not None and not isinstance(v, str):
            raise InvalidInput(f"input {tensor.name!r}[{i}]: BYTES values are strings or null, got {excerpt(v)!r}")
    return values


def _numbers(tensor: RequestInput, values: list | np.ndarray) -> list | np.ndarray:
    """The values, checked to be numbers of the tensor's datatype or null (NaN only in a
    floating-point tensor)."""
    if not isinstance(values, np.ndarray):
        allowed = {bool, type(None)} if tensor.datatype == "BOOL" else {int, float, type(None)}
        kinds = set(map(type, values))
        if not kinds <= allowed or (float in kinds and tensor.datatype not in FLOATING):
            _refuse_first(tensor, values, allowed)
    return values


def _refuse_first(tensor: RequestInput, values: list, allowed: set) -> None:
    """Names the first value of a wrong type (or a NaN or fraction in an integer tensor)."""
    for i, v in enumerate(values):
        if type(v) not in allowed:
            raise InvalidInput(f"input {tensor.name!r}[{i}]: {excerpt(v)!r} is not a {tensor.datatype} value")
        if isinstance(v, float) and not v.is_integer():
            refused = f"{v!r} is refused ({MISSING_VALUES})" if math.isnan(v) else f"{v!r} is not a {tensor.datatype} value"
            raise InvalidInput(f"input {tensor.name!r}[{i}]: {refused}")


def _binary_output(request: InferenceRequest) -> bool:
    """Whether the output goes as binary data; an unknown requested output is refused by name."""
    default = (request.parameters or {}).get("binary_data_output", False)
    if not isinstance(default, bool):
        raise InvalidInput(f"parameters.binary_data_output must be true or false, got {excerpt(default)!r}")
    if not request.outputs:
        return default
    names = [o.name for o in request.outputs]
    unknown = [n for n in names if n != OUTPUT]
    if unknown:
        raise InvalidInput(f"unknown requested output {excerpt(unknown[0])!r}: this model's output is {OUTPUT!r}")
    if len(names) > 1:
        raise InvalidInput(f"output {OUTPUT!r} is requested {len(names)} times")
    parameters = request.outputs[0].parameters or {}
    if any(k.startswith("shared_memory") for k in parameters) or "classification" in parameters:
        raise InvalidInput(f"output {OUTPUT!r}: shared memory and classification are not supported")
    binary = parameters.get("binary_data", default)
    if not isinstance(binary, bool):
        raise InvalidInput(f"output {OUTPUT!r}: parameters.binary_data must be true or false, got {excerpt(binary)!r}")
    return binary
