"""Hostile traffic against `shoal tracker` (RELIABILITY cases 35-37): each bad request gets the spec's error or
is dropped, and the tracker keeps serving a normal client."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from shoal.codec.bencode import decode
from shoal.config import Settings
from shoal.tracker.client import TrackerClient
from shoal.tracker.proto import udp
from shoal.tracker.proto.messages import AnnounceRequest, Event
from shoal.trackerd.config import TrackerdConfig
from shoal.trackerd.server import TrackerServer

IH = b"\x42" * 20
CFG = TrackerdConfig(
    http="127.0.0.1:0",
    udp="127.0.0.1:0",
    request_timeout=1.0,
    keepalive_timeout=1.0,
    max_connections_per_ip=40,
)
CLIENT = Settings(tracker_timeout=5.0, udp_tracker_retry_base=0.5, udp_tracker_retries=1)
GOOD = b"info_hash=" + b"a" * 20 + b"&peer_id=" + b"b" * 20 + b"&port=6881&left=0"


@pytest.fixture
async def server() -> AsyncIterator[TrackerServer]:
    async with TrackerServer(CFG) as srv:
        yield srv


async def still_serving(srv: TrackerServer) -> None:
    assert srv.http_address and srv.udp_address
    async with TrackerClient(CLIENT) as client:
        for url in (
            f"http://127.0.0.1:{srv.http_address[1]}/announce",
            f"udp://127.0.0.1:{srv.udp_address[1]}/announce",
        ):
            r = await client.announce(
                url, AnnounceRequest(IH, b"-SH0100-" + b"z" * 12, 9999, event=Event.STARTED)
            )
            assert (r.complete or 0) + (r.incomplete or 0) >= 1


async def http_exchange(srv: TrackerServer, raw: bytes) -> bytes:
    assert srv.http_address
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.http_address[1])
    try:
        writer.write(raw)
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        await close(writer)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


def status_and_body(reply: bytes) -> tuple[int, bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (b"info_hash=%zz&peer_id=x&port=1", b"percent-encoding"),
        (b"info_hash=" + b"a" * 19 + b"&peer_id=" + b"b" * 20 + b"&port=1", b"19 bytes"),
        (b"info_hash=" + b"a" * 20 + b"&peer_id=" + b"b" * 21 + b"&port=1", b"21 bytes"),
        (b"info_hash=" + b"a" * 20 + b"&peer_id=" + b"b" * 20 + b"&port=0", b"port 0"),
        (b"info_hash=" + b"a" * 20 + b"&peer_id=" + b"b" * 20 + b"&port=99999999999999999999999", b"port"),
        (b"&&&===&&", b"missing info_hash"),
        (GOOD + b"&numwant=-5", b"numwant"),
    ],
)
async def test_malformed_announce_gets_400_failure(
    server: TrackerServer, query: bytes, reason: bytes
) -> None:
    reply = await http_exchange(server, b"GET /announce?" + query + b" HTTP/1.1\r\nConnection: close\r\n\r\n")
    status, body = status_and_body(reply)
    assert status == 400
    assert reason in decode(body)[b"failure reason"]
    await still_serving(server)


async def test_scrape_with_too_many_hashes(server: TrackerServer) -> None:
    query = b"&".join([b"info_hash=" + b"%01" * 20] * 101)
    status, body = status_and_body(
        await http_exchange(server, b"GET /scrape?" + query + b" HTTP/1.0\r\n\r\n")
    )
    assert status == 400 and b"exceeds 100" in decode(body)[b"failure reason"]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /announce?" + b"x" * 100_000 + b" HTTP/1.1\r\n\r\n", 431),
        (b"GET /announce HTTP/1.1\r\n" + b"X-Junk: " + b"y" * 9000 + b"\r\n\r\n", 431),
        (b"GET /announce?" + GOOD + b" HTTP/1.1\r\nContent-Length: 10000000000\r\n\r\n", 413),
        (
            b"GET /announce?" + GOOD + b" HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
            413,
        ),
        (b"POST /announce?" + GOOD + b" HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
        (b"GET /etc/passwd HTTP/1.1\r\nConnection: close\r\n\r\n", 404),
        (b"GET /../../announce HTTP/1.1\r\nConnection: close\r\n\r\n", 404),
        (b"GET /somekey/announce?" + GOOD + b" HTTP/1.1\r\nConnection: close\r\n\r\n", 404),
        (b"GET /scrape HTTP/1.1\r\nConnection: close\r\n\r\n", 200),  # full scrape off: a failure reason
    ],
)
async def test_oversized_and_odd_requests(server: TrackerServer, raw: bytes, status: int) -> None:
    got, body = status_and_body(await http_exchange(server, raw))
    assert got == status
    assert b"failure reason" in body
    await still_serving(server)


async def test_slow_clients_are_cut_off_and_others_served(server: TrackerServer) -> None:
    assert server.http_address
    conns = []
    for _ in range(30):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.http_address[1])
        writer.write(b"GET /annou")  # and never more (slowloris)
        conns.append((reader, writer))
    idle = [await asyncio.open_connection("127.0.0.1", server.http_address[1]) for _ in range(5)]
    await still_serving(server)  # served while 35 connections hang
    try:
        async with asyncio.timeout(10):  # request_timeout / keepalive_timeout are 1 s: all get closed
            for reader, _ in conns + idle:
                assert await reader.read() in (b"",)
    finally:
        for _, writer in conns + idle:
            await close(writer)
    await still_serving(server)


async def test_connections_per_ip_capped_one_past() -> None:
    async with TrackerServer(CFG.with_(max_connections_per_ip=3, keepalive_timeout=30.0)) as srv:
        assert srv.http_address
        conns = [await asyncio.open_connection("127.0.0.1", srv.http_address[1]) for _ in range(4)]
        try:
            async with asyncio.timeout(5):
                assert await conns[3][0].read() == b""  # the 4th is closed at once
            conns[0][1].write(b"GET /announce?" + GOOD + b" HTTP/1.1\r\n\r\n")
            async with asyncio.timeout(5):
                assert (await conns[0][0].readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
        finally:
            for _, w in conns:
                await close(w)


async def test_rate_limit_per_ip() -> None:
    async with TrackerServer(CFG.with_(ip_rate=0.001, ip_burst=2)) as srv:
        statuses = []
        for _ in range(3):
            raw = b"GET /announce?" + GOOD + b" HTTP/1.1\r\nConnection: close\r\n\r\n"
            statuses.append(status_and_body(await http_exchange(srv, raw))[0])
        assert statuses == [200, 200, 429]


async def test_keepalive_and_pipelining(server: TrackerServer) -> None:
    one = b"GET /announce?" + GOOD + b" HTTP/1.1\r\n\r\n"
    reply = await http_exchange(server, one * 3 + b"GET /stats.json HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert reply.count(b"HTTP/1.1 200 OK") == 4


class UdpProbe(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.put_nowait(data)


async def test_udp_bad_packets_dropped_silently_case_35(server: TrackerServer) -> None:
    assert server.udp_address
    loop = asyncio.get_running_loop()
    transport, probe = await loop.create_datagram_endpoint(UdpProbe, remote_addr=server.udp_address)
    try:
        req = AnnounceRequest(IH, b"p" * 20, 1)
        bad = [
            b"\x00",
            udp.encode_connect(1)[:15],  # short connect
            struct.pack(">qii", 12345, 0, 2),  # connect with a wrong protocol id
            udp.encode_announce(0x1234, 3, req),  # random connection id
            udp.encode_announce(udp.ConnectionIdMinter(b"x" * 32).make("127.0.0.1", 0.0), 4, req),  # forged
            udp.encode_announce(0x1234, 5, req)[:97],  # short announce
            udp.encode_scrape(0x1234, 6, [IH]),  # scrape with a wrong id
            struct.pack(">qii", 0x1234, 9, 7) + b"x" * 50,  # unknown action
        ]
        for packet in bad:
            transport.sendto(packet)
        transport.sendto(udp.encode_connect(99))
        async with asyncio.timeout(5):
            first = await probe.got.get()
        assert len(first) == 16  # 16 bytes out for 16 in; nothing came back for the bad packets
        assert udp.decode_connect_response(first, 99)
        # an id minted for another source address is refused too
        cid = udp.decode_connect_response(first, 99)
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            other.bind(("127.0.0.2", 0))
            other.sendto(udp.encode_announce(cid, 8, req), server.udp_address)
        finally:
            other.close()
        transport.sendto(udp.encode_announce(cid, 10, req))
        async with asyncio.timeout(5):
            reply = await probe.got.get()
        assert udp.decode_announce_response(reply, 10).complete == 1
        assert probe.got.empty()
    finally:
        transport.close()
    assert server.service.dropped_udp == 9  # every bad packet above, each counted, none answered
    await still_serving(server)


async def test_udp_scrape_capped(server: TrackerServer) -> None:
    assert server.udp_address
    loop = asyncio.get_running_loop()
    transport, probe = await loop.create_datagram_endpoint(UdpProbe, remote_addr=server.udp_address)
    try:
        transport.sendto(udp.encode_connect(1))
        async with asyncio.timeout(5):
            cid = udp.decode_connect_response(await probe.got.get(), 1)
        transport.sendto(struct.pack(">qii", cid, 2, 2) + IH * 1000)
        async with asyncio.timeout(5):
            reply = await probe.got.get()
        assert len(reply) == 8 + 12 * CFG.max_scrape_hashes_udp
    finally:
        transport.close()


async def test_client_that_never_reads_is_paused() -> None:
    """Pipelined requests from a client that reads nothing: the tracker stops reading (bounded memory);
    others are served meanwhile."""
    async with TrackerServer(CFG.with_(ip_rate=0)) as server:
        await _never_reads(server)


async def _never_reads(server: TrackerServer) -> None:
    assert server.http_address
    sock = socket.create_connection(("127.0.0.1", server.http_address[1]))
    sock.setblocking(False)
    one = b"GET /announce?" + GOOD + b" HTTP/1.1\r\n\r\n"
    sent = 0
    try:
        for _ in range(20000):  # stops when both kernel buffers are full
            try:
                sent += sock.send(one * 64)
            except BlockingIOError:
                break
        await still_serving(server)
        assert sent < 20000 * 64 * len(one)  # the tracker stopped draining this client
    finally:
        sock.close()


async def test_request_size_limit_one_past(server: TrackerServer) -> None:
    def request(total: int) -> bytes:
        head = b"GET /announce?" + GOOD + b"&pad="
        tail = b" HTTP/1.1\r\nConnection: close\r\n\r\n"
        # max_request_size counts the request line and headers, without the final CRLF CRLF
        return head + b"x" * (total - len(head) - len(tail) + 4) + tail

    limit = CFG.max_request_size
    assert len(request(limit)) - 4 == limit
    assert status_and_body(await http_exchange(server, request(limit)))[0] == 200
    assert status_and_body(await http_exchange(server, request(limit + 1)))[0] == 431


async def test_total_connections_capped_one_past() -> None:
    async with TrackerServer(CFG.with_(max_connections=2, keepalive_timeout=30.0)) as srv:
        assert srv.http_address
        conns = [await asyncio.open_connection("127.0.0.1", srv.http_address[1]) for _ in range(3)]
        try:
            async with asyncio.timeout(5):
                assert await conns[2][0].read() == b""  # the third is closed at once
            await close(conns[0][1])
            await asyncio.sleep(0.1)  # let the tracker see the close; not a timing assertion
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.http_address[1])
            writer.write(b"GET /announce?" + GOOD + b" HTTP/1.1\r\n\r\n")
            async with asyncio.timeout(5):
                assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
            await close(writer)
        finally:
            for _, w in conns:
                await close(w)
