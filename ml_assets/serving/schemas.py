"""The service's request and response contract (pydantic): predictions by flight identity and the
event feed. The Open Inference Protocol models are in `inference_protocol.py`."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Literal

import pydantic
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

CARRIER = r"^[A-Z0-9]{2}$"
AIRPORT = r"^[A-Z0-9]{3}$"
TAILNUM = r"^[A-Z0-9]{2,8}$"
EARLIEST, LATEST = 1970, 2100  # years a timestamp may fall in
MAX_EVENTS = 5000  # per POST /v1/events
EVENT_ID = Field(pattern=r"^[!-~]{1,200}$", description="unique per event (printable ASCII): a resent event is ignored")
# departure delay limits, minutes: the processed flights table's (ml_assets/flights/schemas.py)
DEP_DELAY_RANGE = (-240, 2880)


def _text(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string with its UTC offset")
    return value


def _plausible(moment: datetime) -> datetime:
    if not EARLIEST <= moment.year < LATEST:
        raise ValueError(f"{moment.isoformat()} lies outside the years {EARLIEST}..{LATEST - 1}")
    return moment


# Strict types elsewhere (no bool as a number, no number as a string); a moment is parsed from its text only.
Moment = Annotated[
    AwareDatetime, pydantic.Strict(False), BeforeValidator(_text), AfterValidator(_plausible),
    Field(description="ISO 8601 with its UTC offset"),
]  # fmt: skip


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class FlightIdentity(Strict):
    carrier: str = Field(pattern=CARRIER, examples=["AA"], description="IATA carrier code")
    flight: int = Field(ge=1, le=99999, examples=[3], description="flight number")
    origin: str = Field(pattern=AIRPORT, examples=["JFK"], description="departure airport")
    dest: str = Field(pattern=AIRPORT, examples=["LAX"], description="destination airport")
    sched_dep: Moment = Field(examples=["2013-12-31T12:00:00-05:00"], description="scheduled departure")


class FlightRequest(FlightIdentity):
    tailnum: str | None = Field(None, pattern=TAILNUM, examples=["N336AA"], description="aircraft, if known")


def predict_request_model(max_batch: int) -> type[BaseModel]:
    """The body of POST /v1/predict, with the configured batch limit."""

    class PredictRequest(Strict):
        flights: list[FlightRequest] = Field(
            min_length=1, max_length=max_batch, description=f"1 to {max_batch} flights"
        )
        return_features: bool = Field(False, description="also return the feature values used")

    return PredictRequest


class Freshness(BaseModel):
    daily_features_for: date = Field(description="the day the daily features were computed for")
    daily_features_pushed_at: datetime = Field(description="when they were pushed to the online store")
    events_as_of: datetime | None = Field(description="the latest departure or observation the store has seen")
    realtime_complete: bool = Field(description="the event feed has reached the prediction point (within its hourly cadence)")
    realtime_lag_seconds: float = Field(description="how far the feed is behind the prediction point (0: complete)")


class Prediction(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    flight_key: str = Field(examples=["2013-12-31/AA3/JFK"], description="local date/carrier+flight/origin")
    risk: float = Field(ge=0, le=1, description="probability of a disruption (arrival >= 15 min late, cancelled or diverted)")
    model_version: str
    role: Literal["champion", "challenger"]
    prediction_time: datetime = Field(description="the point in time the features describe (2 h before departure)")
    freshness: Freshness
    features: dict[str, float | str | None] | None = None


class PredictResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    request_id: str
    model_name: str
    predictions: list[Prediction]


class ScheduleEvent(FlightIdentity):
    type: Literal["schedule"]
    event_id: str = EVENT_ID
    tailnum: str | None = Field(None, pattern=TAILNUM)
    distance: float = Field(gt=0, le=20000, description="route distance, miles")
    published_at: Moment | None = None


class DepartureEvent(FlightIdentity):
    type: Literal["departure"]
    event_id: str = EVENT_ID
    tailnum: str | None = Field(None, pattern=TAILNUM)
    actual_dep: Moment

    @model_validator(mode="after")
    def _delay_in_range(self) -> DepartureEvent:
        low, high = DEP_DELAY_RANGE
        if not timedelta(minutes=low) <= self.actual_dep - self.sched_dep <= timedelta(minutes=high):
            raise ValueError(f"actual_dep must lie {low}..{high} minutes from sched_dep")
        return self

    @property
    def dep_delay(self) -> float:
        return (self.actual_dep - self.sched_dep).total_seconds() / 60


class CancellationEvent(FlightIdentity):
    type: Literal["cancellation"]
    event_id: str = EVENT_ID


def _reading(low: float, high: float, text: str):
    return Field(None, ge=low, le=high, description=text)


class WeatherEvent(Strict):
    type: Literal["weather"]
    event_id: str = EVENT_ID
    origin: str = Field(pattern=AIRPORT)
    observed_at: Moment
    temp: float | None = _reading(-60, 130, "°F")
    dewp: float | None = _reading(-80, 100, "°F")
    humid: float | None = _reading(0, 100, "%")
    wind_dir: float | None = _reading(0, 360, "degrees")
    wind_speed: float | None = _reading(0, 150, "mph")
    wind_gust: float | None = _reading(0, 200, "mph")
    precip: float | None = _reading(0, 10, "inches in the hour")
    pressure: float | None = _reading(900, 1100, "millibars")
    visib: float | None = _reading(0, 10, "miles")


Event = Annotated[
    ScheduleEvent | DepartureEvent | CancellationEvent | WeatherEvent, Field(discriminator="type")
]


class EventBatch(Strict):
    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS)


class EventRejection(BaseModel):
    event_id: str
    reason: str = Field(examples=["ahead_of_feed"])
    message: str


class EventsResponse(BaseModel):
    received: int
    applied: int
    duplicates: int = Field(description="already applied (same event id): ignored")
    expired: int = Field(description="older than the real-time state kept: ignored")
    rejected: int = Field(0, description="refused by the feed guard (too far ahead, unknown entity): kept, not applied")
    rejections: list[EventRejection] = Field([], description="the first 100 rejected events and why")
    events_as_of: datetime | None
