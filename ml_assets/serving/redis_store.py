"""The online store in Redis (`ML_ASSETS_ONLINE_STORE=redis://host:port/db[?prefix=...]`).

Layout under the key prefix (default `ml_assets:`):
- `e:{series}:{entity}`: a sorted set per entity, scored by time, members
  `{event id}\\x1f{value}\\x1f{payload}` (empty for none);
- `applied`: applied event ids scored by time (the at-most-once guard); `series`: the entry keys;
- `daily:{day}`: a hash key → row; `daily_pushes`: day → when pushed; `meta`: watermark and
  coverage;
- `dead_letters`: a stream of rejected events, `dead_letter_ids`: event id → reason (once per id),
  `dead_letter_counts`: reason → events kept.
A batch of events is applied by one Lua script, so it is atomic and skips known event ids; what a
request reads (`read_snapshot`) is one pipelined round trip, reads keyed by an entity another entry
names resolved inside it by a Lua script. Short socket timeouts make an unreachable Redis an error fast.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ml_assets.serving.sqlite_store import DAILY_RETENTION_DAYS
from ml_assets.serving.store import (
    AppendResult,
    OnlineStore,
    OnlineStoreError,
    DeadLetters,
    NamedRead,
    Rejection,
    Snapshot,
    StoreEvent,
    Tally,
    StoreStatus,
    TimeRange,
    decoded_json,
)

DEFAULT_PREFIX = "ml_assets:"
SEPARATOR = "\x1f"
SOCKET_TIMEOUT_S = 1.0

# KEYS: applied, series, meta. ARGV: received_at, then per event: id, time, progress (0/1), entry
# count, and per entry: key, time, member. Returns {applied, duplicates, expired}.
APPEND_SCRIPT = """
local cutoff = tonumber(redis.call('HGET', KEYS[3], 'expired_before')) or -math.huge
local applied, duplicates, expired = 0, 0, 0
local low, high = nil, nil
local i = 2
while i <= #ARGV do
  local id, t, progress, n = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[i + 3])
  i = i + 4
  if t < cutoff then
    expired = expired + 1
  elseif redis.call('ZADD', KEYS[1], 'NX', t, id) == 0 then
    duplicates = duplicates + 1
    if progress == '1' then low = math.min(low or t, t); high = math.max(high or t, t) end
  else
    applied = applied + 1
    if progress == '1' then low = math.min(low or t, t); high = math.max(high or t, t) end
    for j = 0, n - 1 do
      local k = i + 3 * j
      redis.call('ZADD', ARGV[k], ARGV[k + 1], ARGV[k + 2])
      redis.call('SADD', KEYS[2], ARGV[k])
    end
  end
  i = i + 3 * n
end
if high then
  local w = tonumber(redis.call('HGET', KEYS[3], 'watermark')) or -math.huge
  if high > w then redis.call('HSET', KEYS[3], 'watermark', string.format('%.6f', high)) end
  local c = tonumber(redis.call('HGET', KEYS[3], 'coverage_start')) or math.huge
  if low < c then redis.call('HSET', KEYS[3], 'coverage_start', string.format('%.6f', low)) end
end
if #ARGV > 1 then redis.call('HSET', KEYS[3], 'last_received', ARGV[1]) end
return {applied, duplicates, expired}
"""

# KEYS: dead_letter_ids, dead_letters, dead_letter_counts. ARGV: received_at, then per rejection:
# event id, reason, message, event (JSON). Returns how many were new.
DEAD_LETTER_SCRIPT = """
local kept = 0
for i = 2, #ARGV, 4 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'event_id', ARGV[i], 'reason', ARGV[i + 1], 'message', ARGV[i + 2],
               'event', ARGV[i + 3], 'received_at', ARGV[1])
    redis.call('HINCRBY', KEYS[3], ARGV[i + 1], 1)
    kept = kept + 1
  end
end
return kept
"""


# ARGV per read: source key, source time (start = end), payload field (0-based), daily hash key, daily
# field prefix, entries key prefix, start, end. Returns per read {entity, daily row, {member, score, ...}}
# ('' for none). The keys are computed here: fine on one Redis, not on a cluster.
NAMED_SCRIPT = """
local out = {}
for i = 1, #ARGV, 8 do
  local found = redis.call('ZRANGEBYSCORE', ARGV[i], ARGV[i + 1], ARGV[i + 1])
  local entity, row, entries = '', '', {}
  if #found > 0 then
    local payload = string.match(found[#found], '^[^\\31]*\\31[^\\31]*\\31(.*)$')
    if payload and payload ~= '' then
      local named = cjson.decode(payload)[tonumber(ARGV[i + 2]) + 1]
      if type(named) == 'string' then
        entity = named
        row = redis.call('HGET', ARGV[i + 3], ARGV[i + 4] .. named) or ''
        entries = redis.call('ZRANGEBYSCORE', ARGV[i + 5] .. named, ARGV[i + 6], ARGV[i + 7], 'WITHSCORES')
      end
    end
  end
  out[#out + 1] = {entity, row, entries}
end
return out
"""


# ARGV per tally: key, after, upto, summed (1/0). Returns per tally: count, sum of the values (as
# text). A key whose tallies are counts only is answered by ZCOUNT; the others' entries are read
# once, over the span of their tallies, into times and prefix sums of the values, and each tally is
# then two binary searches (a batch asks many windows of the same few keys).
TALLY_SCRIPT = """
local spans, order = {}, {}
for i = 1, #ARGV, 4 do
  local key, after, upto = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local span = spans[key]
  if not span then
    span = {after = after, upto = upto, summed = false, tallies = 1}
    spans[key] = span
    order[#order + 1] = key
  else
    span.after, span.upto = math.min(span.after, after), math.max(span.upto, upto)
    span.tallies = span.tallies + 1
  end
  span.summed = span.summed or ARGV[i + 3] == '1'
end
for _, key in ipairs(order) do
  local span = spans[key]
  if span.summed then
    local low, high = '(' .. string.format('%.17g', span.after), string.format('%.17g', span.upto)
    local single = span.tallies == 1  -- its one window is the span: no times needed
    local found = single and redis.call('ZRANGEBYSCORE', key, low, high)
                         or redis.call('ZRANGEBYSCORE', key, low, high, 'WITHSCORES')
    local step = single and 1 or 2
    local times, prefix = {}, {[0] = 0}
    for j = 1, #found, step do
      local n, member = (j + step - 1) / step, found[j]
      times[n] = single and span.upto or tonumber(found[j + 1])
      local first = string.find(member, '\\31', 1, true)
      local second = string.find(member, '\\31', first + 1, true)
      prefix[n] = prefix[n - 1] + (tonumber(string.sub(member, first + 1, second - 1)) or 0)
    end
    span.times, span.prefix = times, prefix
  end
end
local function upto_count(times, t)  -- how many times are <= t
  local low, high = 0, #times
  while low < high do
    local middle = math.floor((low + high + 1) / 2)
    if times[middle] <= t then low = middle else high = middle - 1 end
  end
  return low
end
local out = {}
for i = 1, #ARGV, 4 do
  local span = spans[ARGV[i]]
  if span.summed then
    local low = upto_count(span.times, tonumber(ARGV[i + 1]))
    local high = upto_count(span.times, tonumber(ARGV[i + 2]))
    out[#out + 1] = high - low
    out[#out + 1] = ARGV[i + 3] == '1' and string.format('%.17g', span.prefix[high] - span.prefix[low]) or '0'
  else
    out[#out + 1] = redis.call('ZCOUNT', ARGV[i], '(' .. ARGV[i + 1], ARGV[i + 2])
    out[#out + 1] = '0'
  end
end
return out
"""
SCRIPTS = {"named": NAMED_SCRIPT, "tally": TALLY_SCRIPT}  # run inside read_snapshot's pipeline, by digest


class RedisOnlineStore(OnlineStore):
    def __init__(self, url: str):
        import redis

        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.prefix = query.pop("prefix", DEFAULT_PREFIX)
        address = urlunsplit(parts._replace(query=urlencode(query)))
        host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        self.url = urlunsplit(parts._replace(netloc=host, query=""))  # no credentials in messages
        self.client = redis.Redis.from_url(
            address,
            decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            health_check_interval=10,
        )
        self._append = self.client.register_script(APPEND_SCRIPT)
        self._dead_letter = self.client.register_script(DEAD_LETTER_SCRIPT)
        self._shas = {name: self.client.register_script(script).sha for name, script in SCRIPTS.items()}

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _run(self, operation):
        import redis

        try:
            return operation()
        except redis.RedisError as error:
            raise OnlineStoreError(f"online store {self.url}: {error}") from error

    def write_daily(self, day: date, rows: dict[str, dict], pushed_at: datetime) -> None:
        def write() -> None:
            staging = self._key("daily_staging", str(day))
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(staging)
            items = {key: json.dumps(values) for key, values in rows.items()}
            keys = list(items)
            for start in range(0, len(keys), 2000):
                pipe.hset(staging, mapping={k: items[k] for k in keys[start : start + 2000]})
            pipe.execute()
            transaction = self.client.pipeline(transaction=True)
            if items:
                transaction.rename(staging, self._key("daily", str(day)))  # atomic swap
            else:
                transaction.delete(self._key("daily", str(day)))
            transaction.hset(self._key("daily_pushes"), str(day), json.dumps({"pushed_at": pushed_at.isoformat(), "keys": len(items)}))
            for old in self._old_days(day):
                transaction.delete(self._key("daily", old))
                transaction.hdel(self._key("daily_pushes"), old)
            transaction.execute()

        self._run(write)

    def _old_days(self, day: date) -> list[str]:
        oldest = day - timedelta(days=DAILY_RETENTION_DAYS)
        return [d for d in self.client.hkeys(self._key("daily_pushes")) if date.fromisoformat(d) < oldest]

    def read_daily(self, day: date, keys: Sequence[str]) -> list[dict | None]:
        if not keys:
            return []
        values = self._run(lambda: self.client.hmget(self._key("daily", str(day)), list(keys)))
        return [decoded_json(value) if value is not None else None for value in values]

    def append(self, events: Sequence[StoreEvent], received_at: float) -> AppendResult:
        arguments: list = [repr(received_at)]
        for event in events:
            arguments += [event.event_id, repr(event.time), "1" if event.progress else "0", len(event.entries)]
            for entry in event.entries:
                value = "" if entry.value is None else repr(entry.value)
                payload = "" if entry.payload is None else json.dumps(entry.payload)
                member = SEPARATOR.join((event.event_id, value, payload))
                arguments += [self._key("e", entry.series, entry.entity), repr(entry.time), member]
        keys = [self._key("applied"), self._key("series"), self._key("meta")]
        applied, duplicates, expired = self._run(lambda: self._append(keys=keys, args=arguments))
        return AppendResult(applied, duplicates, expired)

    def read_ranges(self, ranges: Sequence[TimeRange]) -> list[list[tuple[float, float | None, list | None]]]:
        def read():
            pipe = self.client.pipeline(transaction=False)
            for r in ranges:
                pipe.execute_command("ZRANGEBYSCORE", self._key("e", r.series, r.entity), r.start, r.end, "WITHSCORES")
            return pipe.execute()

        found = self._run(read) if ranges else []
        return [[(float(score), *_decoded(member)) for member, score in _pairs(reply)] for reply in found]

    def expire(self, before: float) -> int:
        def delete() -> int:
            keys = sorted(self.client.smembers(self._key("series")))
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.zremrangebyscore(key, "-inf", f"({before!r}")
            pipe.zremrangebyscore(self._key("applied"), "-inf", f"({before!r}")
            dropped = sum(pipe.execute()[: len(keys)])
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.zcard(key)
            empty = [key for key, size in zip(keys, pipe.execute()) if size == 0]
            if empty:
                self.client.srem(self._key("series"), *empty)
            current = self.client.hget(self._key("meta"), "expired_before")
            if current is None or float(current) < before:
                self.client.hset(self._key("meta"), "expired_before", repr(before))
            return dropped

        return self._run(delete)

    def dead_letter(self, rejected: Sequence[Rejection], received_at: float) -> int:
        if not rejected:
            return 0
        arguments: list = [repr(received_at)]
        for r in rejected:
            arguments += [r.event_id, r.reason, r.message, json.dumps(r.event)]
        keys = [self._key("dead_letter_ids"), self._key("dead_letters"), self._key("dead_letter_counts")]
        return self._run(lambda: self._dead_letter(keys=keys, args=arguments))

    def dead_letters(self, limit: int) -> DeadLetters:
        def read():
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(self._key("dead_letter_counts"))
            pipe.xrevrange(self._key("dead_letters"), count=limit)
            return pipe.execute()

        counts, entries = self._run(read)
        latest = [
            {"event_id": f["event_id"], "reason": f["reason"], "message": f["message"], "event": json.loads(f["event"]),
             "received_at": float(f["received_at"])}
            for _, f in entries
        ]  # fmt: skip
        return DeadLetters({reason: int(n) for reason, n in sorted(counts.items())}, latest)

    def set_coverage_start(self, start: float) -> None:
        self._run(lambda: self.client.hset(self._key("meta"), "coverage_start", repr(start)))

    def read_tallies(self, tallies: Sequence[Tally]) -> list[tuple[int, float]]:
        return self.read_snapshot({}, [], [], tallies).tallies

    def read_snapshot(
        self, daily: dict[date, list[str]], ranges: Sequence[TimeRange], named: Sequence[NamedRead], tallies: Sequence[Tally]
    ) -> Snapshot:
        import redis

        def read():
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(self._key("meta"))
            pipe.hgetall(self._key("daily_pushes"))
            for day, keys in daily.items():
                pipe.hmget(self._key("daily", str(day)), list(keys))
            for r in ranges:  # raw replies: redis-py's own score parsing costs more than the rest of a request
                pipe.execute_command("ZRANGEBYSCORE", self._key("e", r.series, r.entity), r.start, r.end, "WITHSCORES")
            if named:
                pipe.execute_command("EVALSHA", self._shas["named"], 0, *self._named_arguments(named))
            if tallies:
                arguments = [a for t in tallies
                             for a in (self._key("e", t.series, t.entity), repr(t.after), repr(t.upto), int(t.summed))]  # fmt: skip
                pipe.execute_command("EVALSHA", self._shas["tally"], 0, *arguments)
            return pipe.execute()

        try:
            replies = self._run(read)
        except OnlineStoreError as error:
            if not isinstance(error.__cause__, redis.exceptions.NoScriptError):
                raise
            for name, script in SCRIPTS.items():  # a restarted or flushed Redis
                self._shas[name] = self._run(lambda script=script: self.client.script_load(script))
            replies = self._run(read)
        meta, pushes, rest = replies[0], replies[1], iter(replies[2:])
        rows = {
            day: {k: decoded_json(v) if v is not None else None for k, v in zip(keys, next(rest))}
            for day, keys in daily.items()
        }
        entries = [[(float(score), *_decoded(member)) for member, score in _pairs(next(rest))] for _ in ranges]
        resolved = [_resolved(answer) for answer in next(rest)] if named else []
        flat = next(rest) if tallies else []
        counted = [(int(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]
        return Snapshot(_status(meta, pushes), rows, entries, resolved, counted)

    def _named_arguments(self, named: Sequence[NamedRead]) -> list:
        arguments: list = []
        for n in named:
            arguments += [
                self._key("e", n.source.series, n.source.entity), repr(n.source.start), n.field,
                self._key("daily", str(n.day)), n.daily_prefix, self._key("e", n.series, ""), repr(n.start), repr(n.end),
            ]  # fmt: skip
        return arguments

    def status(self) -> StoreStatus:
        def read():
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(self._key("meta"))
            pipe.hgetall(self._key("daily_pushes"))
            return pipe.execute()

        return _status(*self._run(read))

    def ping(self) -> None:
        self._run(self.client.ping)

    def close(self) -> None:
        self.client.close()

    def delete_everything(self) -> int:
        """Remove every key under the prefix (tests and resets); returns the keys removed."""
        keys = list(self.client.scan_iter(match=self.prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            self.client.delete(*keys[start : start + 1000])
        return len(keys)


def _status(meta: dict, pushes: dict) -> StoreStatus:
    number = {name: float(value) for name, value in meta.items()}
    daily = {date.fromisoformat(d): json.loads(p)["pushed_at"] for d, p in pushes.items()}
    return StoreStatus(
        number.get("watermark"), number.get("coverage_start"), number.get("expired_before"),
        number.get("last_received"), dict(sorted(daily.items())),
    )  # fmt: skip


def _resolved(answer: list) -> tuple[str | None, dict | None, list]:
    """A NAMED_SCRIPT answer: (entity, daily row, entries)."""
    entity, row, flat = answer
    if not entity:
        return None, None, []
    entries = [(float(flat[i + 1]), *_decoded(flat[i])) for i in range(0, len(flat), 2)]
    return entity, decoded_json(row) if row else None, entries


def _pairs(reply: list) -> list:
    """(member, score) of a ZRANGEBYSCORE ... WITHSCORES reply: pairs in RESP3, flat in RESP2."""
    if reply and not isinstance(reply[0], list | tuple):
        return list(zip(reply[::2], reply[1::2]))
    return reply


@lru_cache(maxsize=65536)
def _decoded(member: str) -> tuple[float | None, list | None]:
    """(value, payload) of a member; cached, as every request of a day reads the same entries
    (the payload is shared: read it, never change it)."""
    _, value, payload = member.split(SEPARATOR, 2)
    return (float(value) if value else None), (decoded_json(payload) if payload else None)
