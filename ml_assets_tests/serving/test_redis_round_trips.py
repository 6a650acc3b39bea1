"""The Redis store answers a request's feature assembly in one round trip (one pipelined write of
commands, then their replies), counted on the client's connections: with and without tailnums,
for one flight and for a batch."""

import pytest
import redis

from ml_assets.serving.assembly import FeatureAssembler, FlightQuery
from ml_assets.serving.redis_store import RedisOnlineStore
from ml_assets.serving.warmup import warm_from_lake
from ml_assets_tests.serving.conftest import PARITY_DAY


class CountingConnection(redis.Connection):
    """Counts the writes to the server: each is followed by reading its replies, one round trip."""

    writes = 0

    def send_packed_command(self, command, check_health=True):
        CountingConnection.writes += 1
        return super().send_packed_command(command, check_health)


@pytest.fixture(scope="module")
def warm_redis(real_lake):
    from ml_assets_tests.serving.conftest import redis_url_with_prefix

    store = RedisOnlineStore(redis_url_with_prefix())
    warm_from_lake(real_lake, store, PARITY_DAY)
    pool = store.client.connection_pool
    pool.disconnect()
    pool.connection_class = CountingConnection
    pool.reset()  # new connections are counting ones
    yield store
    store.delete_everything()
    store.close()


@pytest.fixture(scope="module")
def queries(parity_flights) -> list[FlightQuery]:
    rows = parity_flights.filter(parity_flights["tailnum"].is_not_null()).sort("flight_id").head(40)
    return [FlightQuery(r["carrier"], r["flight"], r["origin"], r["dest"], r["sched_dep_utc"], r["tailnum"])
            for r in rows.iter_rows(named=True)]  # fmt: skip


def round_trips(store, flights) -> tuple[int, list]:
    before = CountingConnection.writes
    assembled = FeatureAssembler(store).assemble(flights)
    return CountingConnection.writes - before, assembled


def without_tailnum(query: FlightQuery) -> FlightQuery:
    return FlightQuery(query.carrier, query.flight, query.origin, query.dest, query.sched_dep, None)


def same_features(a: dict, b: dict) -> bool:
    """Equal, numbers to 1e-9 (a batch's sums of delays come from prefix sums over a longer span)."""
    return a.keys() == b.keys() and all(
        a[k] == pytest.approx(b[k], abs=1e-9) if isinstance(a[k], float) else a[k] == b[k] for k in a
    )


def test_one_flight_is_one_round_trip_with_or_without_its_tailnum(warm_redis, queries):
    round_trips(warm_redis, [queries[1], without_tailnum(queries[2])])  # connects, loads the script: once

    given, (with_tailnum,) = round_trips(warm_redis, queries[:1])
    left_out, (from_schedule,) = round_trips(warm_redis, [without_tailnum(queries[0])])

    assert (given, left_out) == (1, 1)
    assert from_schedule.features == with_tailnum.features  # the aircraft its published schedule names


def test_a_batch_is_one_round_trip(warm_redis, queries):
    mixed = [q if i % 2 else without_tailnum(q) for i, q in enumerate(queries)]
    round_trips(warm_redis, mixed[:2])

    count, assembled = round_trips(warm_redis, mixed)
    _, expected = round_trips(warm_redis, queries)

    one_by_one = [FeatureAssembler(warm_redis).assemble([q])[0] for q in queries]

    assert count == 1
    assert [a.features for a in assembled] == [a.features for a in expected]
    assert all(same_features(a.features, b.features) for a, b in zip(expected, one_by_one))
    assert sum(a.features["plane_seats"] is not None for a in assembled[::2]) > 10  # resolved aircraft rows


def test_a_redis_that_lost_its_scripts_is_answered_after_one_reload(warm_redis, queries):
    warm_redis._shas = {name: "0" * 40 for name in warm_redis._shas}  # as after a restart: no such scripts

    (assembled,) = FeatureAssembler(warm_redis).assemble([without_tailnum(queries[0])])

    assert assembled.features == FeatureAssembler(warm_redis).assemble(queries[:1])[0].features
    assert "0" * 40 not in warm_redis._shas.values()
