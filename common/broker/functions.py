"""logpipe's Lua, as one Valkey/Redis function library, and the one place that loads and checks it.

The library ``logpipe`` holds every script logpipe runs on the broker: the atomic batch claim, the
batch deletion and the idempotent dead-letter add. An admin loads it (FUNCTION LOAD): ``logpipe
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

redis.register_function('logpipe_claim_batch', claim_batch)
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
VERSION_FUNCTION = "logpipe_version"


SETUP_HINT = ("an admin loads it with `logpipe acl setup --redis ADMIN_URL_FILE --functions-only` "
              "(or `--dir DIR`, which also rotates the users' passwords)")


def _where(client) -> str:
    """user@host:port of a client, for messages (never the password)."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {}) or {}
    user = kwargs.get("username") or "default"
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
