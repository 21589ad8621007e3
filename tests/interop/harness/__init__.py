"""The interop test harness: real reference peers (libtorrent, Transmission, aria2, opentracker) for tests.

Import as ``from interop.harness import ...`` (``tests/`` is on ``sys.path``: see ``tests/conftest.py``). Every
helper is a context manager whose ``close()`` stops its processes (by process group) and removes what it made;
every wait has a timeout and raises ``TimeoutError`` with the peer's status and log tail. Prefer the pytest
fixtures in ``tests/interop/conftest.py``: they check the peer is installed (skip locally, fail under CI=true)
and clean up after the test.

Modules:

* :mod:`~interop.harness.content`         sample content, .torrent files made with libtorrent, tree comparison;
* :mod:`~interop.harness.opentracker`     ``OpenTracker``: HTTP+UDP tracker with an info-hash allow-list;
* :mod:`~interop.harness.libtorrent_peer` ``LtSession``: in-process libtorrent with the PEERS.md settings;
* :mod:`~interop.harness.lt_runner`       the same in a subprocess printing JSON (CPU/RSS per process);
* :mod:`~interop.harness.aria2`           ``Aria2Peer``: aria2c seeding or downloading, progress over JSON-RPC;
* :mod:`~interop.harness.netns`           ``Netns``: a namespace + veth pair, a second "host" for Transmission;
* :mod:`~interop.harness.transmission`    ``TransmissionPeer``: transmission-daemon inside a ``Netns``;
* :mod:`~interop.harness.proc`            process groups, free ports, bounded waits.

A whole transfer, libtorrent seeding to aria2 through opentracker (see ``test_harness_baselines.py``)::

    def test_example(tmp_path, make_tracker, make_aria2):
        src = content.make_multifile(tmp_path / "seed", total=4 << 20, piece_length=64 << 10)
        ot = make_tracker()                                   # 127.0.0.1; make_tracker(host=ns.host_addr)
        t = content.make_torrent(src.path, tmp_path / "s.torrent", piece_length=64 << 10,
                                 trackers=[ot.announce_url])
        ot.allow(t.info_hash)
        with LtSession() as seeder:
            h = seeder.add(t.path, src.parent, seed=True)
            seeder.wait_announced(h, timeout=15)
            a2 = make_aria2(t.path, tmp_path / "dl")
            a2.wait_complete(timeout=60)
        content.assert_same_tree(src.path, tmp_path / "dl" / src.name)

With Transmission, everything on the host listens on ``ns.host_addr`` instead of 127.0.0.1
(``LtSession(ns.host_addr)``, ``make_tracker(host=ns.host_addr)``, ``Aria2Peer(..., listen_ip=ns.host_addr)``),
and Shoal too (bind its listener there).
"""
