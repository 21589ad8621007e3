"""Acceptance 6 (issue 4): thousands of DhtNodes in one process on a simulated network with a fake clock.

Every datagram is real KRPC bytes through ``DhtNode.receive_datagram``; latency 5-100 ms, seeded. The report
(printed; run with ``-s`` to see it, numbers in docs/PERFORMANCE.md "DHT") gives median and 95th-percentile hops
and queries per lookup against log2(N).
"""

from __future__ import annotations

import math

from shoal.testing.dht_sim import bootstrap_network, lookup_experiment


def test_lookups_converge_in_a_5000_node_dht() -> None:
    report, sim = lookup_experiment(5000, 200, announces=20, seed=11)
    print("\n" + "\n".join(report.lines()))
    assert report.nodes == 5000
    assert report.converged == report.lookups  # every lookup found the true 8 closest nodes
    assert report.closest_found == report.lookups
    assert report.announces_found == report.announces
    assert report.hops_p95 <= math.log2(report.nodes)
    assert all(len(n.tables[4]) <= 8 * len(n.tables[4].buckets) for n in sim.nodes.values())


def test_lookups_still_find_the_closest_node_with_loss() -> None:
    report, _ = lookup_experiment(1000, 100, announces=10, seed=12, loss=0.05)
    print("\n" + "\n".join(report.lines()))
    # a timed-out node near the target is asked once more; losing both tries drops it from the result
    assert report.converged >= 0.8 * report.lookups
    assert report.closest_found >= 0.9 * report.lookups
    assert report.announces_found >= 0.8 * report.announces


def test_network_built_by_bootstrapping_only() -> None:
    sim = bootstrap_network(300, seed=13)
    assert all(len(n.tables[4]) >= 8 for n in sim.nodes.values())
    report, _ = lookup_experiment(0, 50, announces=10, sim=sim)
    print("\n" + "\n".join(report.lines()))
    assert report.closest_found >= 0.9 * report.lookups
    assert report.announces_found == report.announces
