"""DHT lookup cost in a simulated network: hops and queries per lookup against log2(N).

Run: ``.venv/bin/python benchmarks/bench_dht_sim.py [--nodes 1000 5000 20000] [--lookups 300] [--loss 0 0.05]``

Every node is a real :class:`shoal.dht.node.DhtNode`; datagrams are real KRPC bytes delivered by
:class:`shoal.testing.dht_sim.DhtSim` (fake clock, 5-100 ms seeded latency, optional loss). Routing tables are
those of a settled DHT (``populate_tables``); one extra row builds the network through bootstrap lookups only.
Prints one Markdown table row per configuration (the table in docs/PERFORMANCE.md "DHT").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shoal.testing.dht_sim import LookupReport, bootstrap_network, lookup_experiment


def row(label: str, r: LookupReport, seconds: float) -> str:
    return (
        f"| {label} | {r.nodes} | {r.log2_n:.1f} | {r.loss:.0%} | {r.lookups} | {r.converged} | {r.closest_found} "
        f"| {r.hops_median:.0f} / {r.hops_p95:.0f} | {r.messages_median:.0f} / {r.messages_p95:.0f} "
        f"| {r.announces_found}/{r.announces} | {seconds:.1f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--announces", type=int, default=30)
    parser.add_argument("--loss", type=float, nargs="+", default=[0.0, 0.05])
    parser.add_argument("--bootstrap-nodes", type=int, default=1000, help="0 skips the bootstrap-only row")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(
        "| tables | N | log2 N | loss | lookups | true 8 closest found | true closest found "
        "| hops median / p95 | queries median / p95 | announce then get_peers | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.nodes:
        for loss in args.loss:
            started = time.perf_counter()
            report, _ = lookup_experiment(
                n, args.lookups, announces=args.announces, seed=args.seed, loss=loss
            )
            print(row("settled", report, time.perf_counter() - started), flush=True)
    if args.bootstrap_nodes:
        started = time.perf_counter()
        sim = bootstrap_network(args.bootstrap_nodes, seed=args.seed)
        report, _ = lookup_experiment(0, args.lookups, announces=args.announces, sim=sim)
        print(row("bootstrapped", report, time.perf_counter() - started), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
