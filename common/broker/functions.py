"""logpipe's Lua, as one Valkey/Redis function library, and the one place that loads and checks it.

The library ``logpipe`` holds every script logpipe runs on the broker: the atomic batch claim, the
batch deletion, the idempotent dead-letter add and the loss ledger's merge. An admin loads it (FUNCTION LOAD): ``logpipe
acl setup``, or ``logpipe up`` for the embedded broker. Clients call it with FCALL, which is all the
``logpipe-indexer`` ACL user may run of Lua: EVAL, EVALSHA, SCRIPT and FUNCTION are refused to it, so
it cannot run a script of its own (an endless loop in one would stall the broker for every client).

A client checks the loaded library's version once, before its first call (and ``logpipe index`` at
start-up). A library that is missing or of another version is loaded by a user allowed to (an
admin's URL: the tests, a broker without ACL users); for any other user it is a
:class:`BrokerSetupError` telling the admin to run ``logpipe acl setup``.
"""

from __future__ import annotations

import hashlib

import redis.exceptions

from logpipe.common.errors import BrokerSetupError

# The library's version is a digest of its source: any change to a function makes an older
# loaded copy "outdated", with nothing to remember to bump. Function names are server-wide, hence
# the ``logpipe_`` in each.
LIBRARY_NAME = "logpipe"

_LIBRARY_BODY = """
-- KEYS[1]=raw list, KEYS[2]=batch key, KEYS[3]=batches zset; ARGV[1]=max items, ARGV[2]=now.
-- Moves up to N items from the head of the raw list into the batch key and registers it.
local function claim_batch(keys, args)
  local items = redis.call('LRANGE', keys[1], 0, tonumber(args[1]) - 1)
  local n = #items
  if n == 0 then return 0 end
  for i = 1, n, 1000 do
    redis.call('RPUSH', keys[2], unpack(items, i, math.min(i + 999, n)))
  end
  redis.call('LTRIM', keys[1], n, -1)
  redis.call('ZADD', keys[3], args[2], keys[2])
  return n
end

-- KEYS[1]=batch key, KEYS[2]=batches zset: forget a batch (one call, so WAIT can follow it on
-- the same connection).
local function finish_batch(keys, args)
  redis.call('DEL', keys[1])
  redis.call('ZREM', keys[2], keys[1])
  return 1
end

-- KEYS[1]=stream, KEYS[2]=ids hash, KEYS[3]=counts by stage; ARGV[1]=record id, ARGV[2]=stage,
-- ARGV[3..]=field/value pairs. Adds a dead letter unless that record id is already in.
local function dlq_add(keys, args)
  if redis.call('HEXISTS', keys[2], args[1]) == 1 then return false end
  local entry = redis.call('XADD', keys[1], '*', unpack(args, 3))
  redis.call('HSET', keys[2], args[1], entry)
  redis.call('HINCRBY', keys[3], args[2], 1)
  return entry
end

-- KEYS[1]=ledger hash; ARGV[1]=now, then per source: name, meta JSON {host, path, newest}, runs
-- "a-b,a-b,..." (seqs accounted for: stored, already present, dropped or dead-lettered).
-- Idempotent merge: a source's state is the highest contiguous seq from 0 (upto), the runs held
-- above it and the holes between, each hole with the time it was first seen (kept by the
-- pieces a late record splits it into); records counts each seq once.
local function ledger_merge(keys, args)
  local now = tonumber(args[1])
  for i = 2, #args, 3 do
    local src, meta = args[i], cjson.decode(args[i + 1])
    local raw = redis.call('HGET', keys[1], src)
    local st = raw and cjson.decode(raw) or {upto = -1, runs = {}, holes = {}, records = 0}
    local runs = {}
    local before = st.upto + 1
    for _, r in ipairs(st.runs) do
      runs[#runs + 1] = {r[1], r[2]}
      before = before + r[2] - r[1] + 1
    end
    for a, b in string.gmatch(args[i + 2], '(%d+)-(%d+)') do
      runs[#runs + 1] = {tonumber(a), tonumber(b)}
    end
    table.sort(runs, function(x, y) return x[1] < y[1] end)
    local upto, merged = st.upto, {}
    for _, r in ipairs(runs) do
      if r[2] > upto then
        if r[1] <= upto + 1 and #merged == 0 then
          upto = r[2]
        else
          local last = merged[#merged]
          if last and r[1] <= last[2] + 1 then
            if r[2] > last[2] then last[2] = r[2] end
          else
            merged[#merged + 1] = {math.max(r[1], upto + 1), r[2]}
          end
        end
      end
    end
    local after = upto + 1
    for _, r in ipairs(merged) do after = after + r[2] - r[1] + 1 end
    local holes, lo = {}, upto + 1
    for _, r in ipairs(merged) do
      local seen = now
      for _, h in ipairs(st.holes) do
        if h[1] <= r[1] - 1 and h[2] >= lo and h[3] < seen then seen = h[3] end
      end
      holes[#holes + 1] = {lo, r[1] - 1, seen}
      lo = r[2] + 1
    end
    st.upto, st.runs, st.holes = upto, merged, holes
    st.records = (st.records or 0) + after - before
    if meta.host then st.host = meta.host end
    if meta.path then st.path = meta.path end
    if meta.newest and meta.newest >= (st.newest or 0) then
      st.newest = meta.newest
      st.lag = now - meta.newest
    end
    st.updated = now
    redis.call('HSET', keys[1], src, cjson.encode(st))
  end
  return 1
end

redis.register_function('logpipe_claim_batch', claim_batch)
redis.register_function('logpipe_ledger_merge', ledger_merge)
redis.register_function('logpipe_finish_batch', finish_batch)
redis.register_function('logpipe_dlq_add', dlq_add)
"""

LIBRARY_VERSION = hashlib.sha256(_LIBRARY_BODY.encode()).hexdigest()[:12]

# The whole library as FUNCTION LOAD takes it; ``logpipe_version`` (read-only, no keys) tells a
# client whether the loaded copy is the one it was built with.
LIBRARY = (f"#!lua name={LIBRARY_NAME}\n{_LIBRARY_BODY}"
           f"redis.register_function{{function_name='logpipe_version', "
           f"callback=function() return '{LIBRARY_VERSION}' end, flags={{'no-writes'}}}}\n")

# The functions' names (FCALL name numkeys keys... args...).
CLAIM_BATCH = "logpipe_claim_batch"
FINISH_BATCH = "logpipe_finish_batch"
DLQ_ADD = "logpipe_dlq_add"
LEDGER_MERGE = "logpipe_ledger_merge"
VERSION_FUNCTION = "logpipe_version"


SETUP_HINT = ("an admin loads it with `logpipe acl setup --redis ADMIN_URL_FILE --functions-only` "
              "(or `--dir DIR`, which also rotates the users' passwords)")


def _where(client) -> str:
    """user@host:port of a client, for messages (never the password)."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {}) or {}
    provider = kwargs.get("credential_provider")  # a URL file's, read on each connect
    initial: tuple = getattr(provider, "initial", ())
    user = kwargs.get("username") or (initial[0] if len(initial) == 2 else "") or "default"
    host = kwargs.get("host") or kwargs.get("path") or "the broker"
    port = kwargs.get("port")
    return f"{user}@{host}:{port}" if port else f"{user}@{host}"


def loaded_version(client) -> str | None:
    """The version of the ``logpipe`` library the broker holds, None when it holds none."""
    try:
        found = client.fcall_ro(VERSION_FUNCTION, 0)
    except redis.exceptions.NoPermissionError as exc:
        raise BrokerSetupError(f"the broker user {_where(client)} may not call logpipe's functions "
                               f"(FCALL_RO refused: {exc}); run `logpipe acl setup` to give "
                               f"logpipe-indexer its rules") from None
    except redis.exceptions.ResponseError as exc:
        text = str(exc).lower()
        if "function not found" in text:
            return None
        if "unknown command" in text:
            raise BrokerSetupError(f"the broker at {_where(client)} has no functions (FCALL): "
                                   f"logpipe needs Valkey 7.2+ or Redis 7.0+") from None
        raise
    return found.decode() if isinstance(found, bytes) else str(found)


def load_library(client) -> None:
    """FUNCTION LOAD REPLACE of the library (an admin's client)."""
    try:
        client.function_load(LIBRARY, replace=True)
    except redis.exceptions.NoPermissionError as exc:
        raise BrokerSetupError(f"the broker user {_where(client)} may not load functions "
                               f"(FUNCTION LOAD refused: {exc}); use an admin's URL") from None
    except redis.exceptions.ResponseError as exc:
        if "unknown command" in str(exc).lower():
            raise BrokerSetupError(f"the broker at {_where(client)} has no functions (FUNCTION "
                                   f"LOAD): logpipe needs Valkey 7.2+ or Redis 7.0+") from None
        raise


def ensure_library(client) -> None:
    """The broker holds this logpipe's library (checked once per client). Missing or of another
    version: loaded when this user may, else :class:`BrokerSetupError` naming the fix."""
    if getattr(client, "logpipe_library", None) == LIBRARY_VERSION:
        return
    found = loaded_version(client)
    if found != LIBRARY_VERSION:
        try:
            load_library(client)
        except BrokerSetupError:
            state = ("has no logpipe function library" if found is None else
                     f"holds logpipe function library version {found}")
            raise BrokerSetupError(
                f"the broker at {_where(client)} {state}, this logpipe needs version "
                f"{LIBRARY_VERSION} and its user may not load it: {SETUP_HINT}") from None
    client.logpipe_library = LIBRARY_VERSION


def fcall(client, target, name: str, keys: list, args: list):
    """FCALL ``name`` on ``target`` (``client`` itself or a pipeline of it), after making sure the
    broker holds the library."""
    ensure_library(client)
    return target.fcall(name, len(keys), *keys, *args)
