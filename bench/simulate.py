"""How long the simulator takes over a month of tickets: `python -m bench.simulate --tickets 1000`.

Made-up tickets (simulator/sample.py, the same for the same count) replayed under the shipped policy as
baseline and policies/candidate-example.toml as candidate, as `starter.py simulate --sample N` does.
Prints the wall-clock time of the replay and of the whole run, and the replays per second.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path

from bench.stack import header
from simulator.run import simulate
from simulator.sample import month_of_tickets
from stack import logs
from worker import pin_zone_rules
from workflows.policy import load_policy

CANDIDATE = Path(__file__).resolve().parent.parent / "policies" / "candidate-example.toml"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--baseline-only", action="store_true", help="one policy: each ticket replayed once")
    args = parser.parse_args()
    pin_zone_rules()
    logs.configure(level=logging.WARNING)
    header()
    tickets = month_of_tickets(args.tickets)
    baseline = load_policy()
    candidate = baseline if args.baseline_only else load_policy(CANDIDATE)
    began = time.monotonic()
    sim = await simulate(tickets, baseline, candidate)
    total = time.monotonic() - began
    replays = len(tickets) * (1 if args.baseline_only else 2)
    runs = "one policy" if args.baseline_only else "baseline and candidate"
    print(f"tickets: {len(tickets)} over 30 days; replays: {replays} ({runs})")
    print(f"replay: {sim.seconds:.1f} s; whole run: {total:.1f} s; {replays / sim.seconds:.1f} replays/s")
    print(f"outcomes changed by the candidate: {len(sim.changed)}")


if __name__ == "__main__":
    asyncio.run(main())
