"""How long the simulator takes over a month of tickets: `python -m bench.simulate --tickets 1000`.

Made-up tickets (simulator/sample.py, the same for the same count) replayed under the shipped policy as
baseline and policies/candidate-example.toml as candidate, as `starter.py simulate --sample N` does.
Prints the wall-clock time of the replay and of the whole run, the replays per second, and the CPU time
of every process (worker, pool, test servers) per replay. `--shard-replays` and `--processes` set how
the replays are shared out (default: as the simulator does).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path

from bench.stack import cpu_seconds, header
from simulator.run import SHARD_REPLAYS, simulate
from simulator.sample import month_of_tickets
from stack import logs
from worker import pin_zone_rules
from workflows.policy import load_policy

CANDIDATE = Path(__file__).resolve().parent.parent / "policies" / "candidate-example.toml"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--baseline-only", action="store_true", help="one policy: each ticket replayed once")
    parser.add_argument("--shard-replays", type=int, default=SHARD_REPLAYS, help="replays per test server")
    parser.add_argument("--processes", type=int, default=None, help="default: one per core")
    args = parser.parse_args()
    pin_zone_rules()
    logs.configure(level=logging.WARNING)
    header()
    tickets = month_of_tickets(args.tickets)
    baseline = load_policy()
    candidate = baseline if args.baseline_only else load_policy(CANDIDATE)
    began, cpu_before = time.monotonic(), cpu_seconds()
    sim = await simulate(
        tickets, baseline, candidate, shard_replays=args.shard_replays, processes=args.processes
    )
    total, cpu = time.monotonic() - began, cpu_seconds() - cpu_before
    replays = len(tickets) * (1 if args.baseline_only else 2)
    runs = "one policy" if args.baseline_only else "baseline and candidate"
    print(f"tickets: {len(tickets)} over 30 days; replays: {replays} ({runs})")
    print(f"replay: {sim.seconds:.1f} s; whole run: {total:.1f} s; {replays / sim.seconds:.1f} replays/s")
    print(f"CPU, all processes: {cpu:.1f} s ({cpu / replays * 1000:.0f} ms a replay)")
    print(f"outcomes changed by the candidate: {len(sim.changed)}")


if __name__ == "__main__":
    asyncio.run(main())
