"""``--redis URL``: swarms kept in Redis so several tracker processes (``--reuse-port``) serve one swarm state.

Layout (``P`` = ``redis_prefix``, ``H`` = hex info-hash)::

    P H:s        sorted set: seeders, member = compact address (ip bytes + port), score = wall-clock last seen
    P H:l        sorted set: leechers, same
    P dl         hash: H -> completed downloads
    P swarms     set of H
    P stats      hash: announces, scrapes, started, completed, stopped
    P udp-secret the key of UDP connection ids, shared by all processes

Announces arriving in one event-loop iteration are sent in one pipeline (one round trip). One Lua script does a
whole announce atomically (expire the swarm's silent peers, move the peer between the
sets, count the event, sample peers with ZRANDMEMBER, return the counts), so concurrent processes agree.
Times are wall-clock (``time.time()``) because processes do not share a monotonic clock. Peer ids are not
stored: dictionary-mode answers carry no ``peer id``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from shoal.errors import NetworkError
from shoal.tracker.proto.messages import Event, ScrapeStats
from shoal.trackerd.config import TrackerdConfig
from shoal.trackerd.registry import AnnounceRefused, AnnounceResult, ServerAnnounce

_ANNOUNCE_LUA = """
local s, l, dl, st, sw = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local addr, seeder, ev = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3])
local now, cutoff, k, ih = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
redis.call('ZREMRANGEBYSCORE', s, '-inf', cutoff)
redis.call('ZREMRANGEBYSCORE', l, '-inf', cutoff)
redis.call('HINCRBY', st, 'announces', 1)
if ev == 3 then
  redis.call('ZREM', s, addr)
  redis.call('ZREM', l, addr)
  redis.call('HINCRBY', st, 'stopped', 1)
  return {redis.call('ZCARD', s), redis.call('ZCARD', l), {}}
end
local was_seeder = redis.call('ZSCORE', s, addr)
if ev == 1 then
  redis.call('HINCRBY', st, 'completed', 1)
  if not was_seeder then redis.call('HINCRBY', dl, ih, 1) end
elseif ev == 2 then
  redis.call('HINCRBY', st, 'started', 1)
end
if seeder then
  redis.call('ZREM', l, addr)
  redis.call('ZADD', s, now, addr)
else
  redis.call('ZREM', s, addr)
  redis.call('ZADD', l, now, addr)
end
redis.call('SADD', sw, ih)
local ns, nl = redis.call('ZCARD', s), redis.call('ZCARD', l)
local peers = {}
if k > 0 then
  local kl, ks = k, 0
  if not seeder then
    ks = math.floor(k * ns / (ns + nl) + 0.5)
    kl = k - ks
  end
  if kl > 0 then
    for _, p in ipairs(redis.call('ZRANDMEMBER', l, kl + 1)) do
      if p ~= addr and #peers < kl then peers[#peers + 1] = p end
    end
  end
  if ks > 0 then
    for _, p in ipairs(redis.call('ZRANDMEMBER', s, ks + 1)) do
      if p ~= addr and #peers < k then peers[#peers + 1] = p end
    end
  end
end
return {ns, nl, peers}
"""


class RedisBackend:
    def __init__(
        self, config: TrackerdConfig, *, allowed: set[bytes] | None = None, passkeys: set[str] | None = None
    ) -> None:
        assert config.redis is not None
        self.config = config
        self.allowed = allowed
        self.passkeys = passkeys
        self._p = config.redis_prefix
        self._redis: Any = aioredis.Redis.from_url(config.redis)
        self._sha: str | None = None
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    def _check(self, info_hash: bytes, passkey: str | None) -> None:
        if self.passkeys is not None and passkey not in self.passkeys:
            raise AnnounceRefused("unknown passkey")
        if self.allowed is not None and info_hash not in self.allowed:
            raise AnnounceRefused("unregistered torrent")

    async def announce(self, req: ServerAnnounce, now: float) -> AnnounceResult:
        cfg = self.config
        self._check(req.info_hash, req.passkey)
        wall = time.time()
        numwant = req.numwant if req.numwant is not None else cfg.default_numwant
        numwant = max(0, min(numwant, cfg.max_numwant))
        h = req.info_hash.hex()
        p = self._p
        call = (
            f"{p}{h}:s",
            f"{p}{h}:l",
            f"{p}dl",
            f"{p}stats",
            f"{p}swarms",
            req.addr,
            "1" if req.left == 0 else "0",
            req.event.udp,
            wall,
            wall - cfg.peer_timeout,
            numwant if req.event is not Event.STOPPED else 0,
            h,
        )
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.append((call, fut))
        if len(self._queue) == 1:
            loop.call_soon(self._start_flush)
        ns, nl, addrs = await fut
        peers = [bytes(a) for a in addrs if len(a) in (6, 18)]
        has_v6 = any(len(a) == 18 for a in peers)
        return AnnounceResult(cfg.interval, cfg.min_interval, int(ns), int(nl), peers, has_v6)

    def _start_flush(self) -> None:
        batch, self._queue = self._queue, []
        task = asyncio.ensure_future(self._flush(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        """Every announce that arrived during one loop iteration goes to Redis in one pipeline (one round trip)."""
        try:
            if self._sha is None:
                self._sha = await self._redis.script_load(_ANNOUNCE_LUA)
            results: list[Any] = []
            for attempt in range(2):
                pipe = self._redis.pipeline(transaction=False)
                for call, _ in batch:
                    pipe.evalsha(self._sha, 5, *call)
                results = await pipe.execute(raise_on_error=False)
                if attempt == 0 and any(isinstance(r, NoScriptError) for r in results):
                    self._sha = await self._redis.script_load(_ANNOUNCE_LUA)  # e.g. redis restarted
                    continue
                break
        except RedisError as exc:
            error = NetworkError(f"redis announce failed: {exc}")
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(error)
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(result, Exception):
                fut.set_exception(NetworkError(f"redis announce failed: {result}"))
            else:
                fut.set_result(result)

    async def scrape(self, hashes: list[bytes], passkey: str | None) -> dict[bytes, ScrapeStats]:
        if self.passkeys is not None and passkey not in self.passkeys:
            raise AnnounceRefused("unknown passkey")
        hashes = [ih for ih in hashes if self.allowed is None or ih in self.allowed]
        cutoff = time.time() - self.config.peer_timeout
        p = self._p
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.hincrby(f"{p}stats", "scrapes", 1)
            for ih in hashes:
                h = ih.hex()
                pipe.zcount(f"{p}{h}:s", cutoff, "+inf")
                pipe.zcount(f"{p}{h}:l", cutoff, "+inf")
                pipe.hget(f"{p}dl", h)
            values = await pipe.execute()
        except RedisError as exc:
            raise NetworkError(f"redis scrape failed: {exc}") from None
        out = {}
        for i, ih in enumerate(hashes):
            s, lc, d = values[1 + 3 * i : 4 + 3 * i]
            out[ih] = ScrapeStats(int(s), int(d or 0), int(lc))
        return out

    async def full_scrape(self, passkey: str | None) -> dict[bytes, ScrapeStats]:
        if not self.config.full_scrape:
            raise AnnounceRefused("full scrape is disabled")
        members = await self._redis.srandmember(f"{self._p}swarms", self.config.max_full_scrape)
        return await self.scrape([bytes.fromhex(m.decode()) for m in members], passkey)

    async def stats(self) -> dict[str, int]:
        p = self._p
        counters = {k.decode(): int(v) for k, v in (await self._redis.hgetall(f"{p}stats")).items()}
        swarms = await self._redis.srandmember(f"{p}swarms", 10_000)
        pipe = self._redis.pipeline(transaction=False)
        for m in swarms:
            pipe.zcard(f"{p}{m.decode()}:s")
            pipe.zcard(f"{p}{m.decode()}:l")
        cards = await pipe.execute() if swarms else []
        seeders, leechers = sum(cards[0::2]), sum(cards[1::2])
        return {
            "swarms": int(await self._redis.scard(f"{p}swarms")),
            "peers": seeders + leechers,
            "seeders": seeders,
            "leechers": leechers,
            **{k: counters.get(k, 0) for k in ("announces", "scrapes", "started", "completed", "stopped")},
        }

    async def shared_secret(self) -> bytes:
        """The UDP connection-id key, the same for every process using this Redis (so an id minted by one
        process is accepted by another, e.g. after the kernel moves a client to another SO_REUSEPORT socket)."""
        key = f"{self._p}udp-secret"
        try:
            await self._redis.set(key, secrets.token_bytes(32), nx=True)
            value = await self._redis.get(key)
        except RedisError as exc:
            raise NetworkError(f"redis unreachable: {exc}") from None
        return bytes(value)

    async def close(self) -> None:
        await self._redis.aclose()
