"""`starter.py simulate`: a month of tickets through a candidate policy beside the current one."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from console.report import parse_since
from simulator.from_db import tickets_from_db
from simulator.render import render
from simulator.run import simulate
from simulator.sample import month_of_tickets
from simulator.tickets import (
    FIELDS,
    JSON_SUFFIXES,
    RecordedTicket,
    TicketFileError,
    read_tickets,
    write_csv,
)
from stack.settings import Settings
from workflows.policy import Policy, load_policy
from workflows.rules import field_errors

Database = Callable[[Settings], AbstractAsyncContextManager[asyncpg.Pool]]


def add_command(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    sim: argparse.ArgumentParser = commands.add_parser(
        "simulate",
        help="replay recorded tickets through a candidate policy beside the current one",
        description=(
            "Replays each ticket through the real CaseWorkflow on Temporal's time-skipping server, once "
            "under the baseline policy and once under the candidate, with notifications counted and "
            "nothing written to the database. Ticket file columns: " + ", ".join(FIELDS) + "."
        ),
    )
    source = sim.add_mutually_exclusive_group(required=True)
    source.add_argument("--tickets", type=Path, metavar="FILE", help="CSV, or JSON lines (.jsonl)")
    source.add_argument("--from-db", action="store_true", help="the cases opened in --since, from PostgreSQL")
    source.add_argument("--sample", type=int, metavar="N", help="N made-up tickets over a month (a demo)")
    sim.add_argument("--since", default="30d", help="with --from-db: 30d, 2w, 12h (default 30d)")
    sim.add_argument("--policy", type=Path, metavar="CANDIDATE.toml", help="default: the baseline")
    sim.add_argument(
        "--baseline", type=Path, metavar="CURRENT.toml", help="default: the policy in use (ABH_POLICY_FILE)"
    )
    output = sim.add_mutually_exclusive_group()
    output.add_argument("--json", dest="fmt", action="store_const", const="json", default="table")
    output.add_argument("--csv", dest="fmt", action="store_const", const="csv")
    sim.add_argument("--plot", type=Path, metavar="FILE.png", help="draw load by hour and breach rates")
    sim.add_argument("--save-tickets", type=Path, metavar="FILE.csv", help="write the tickets replayed")
    return sim


async def simulate_command(settings: Settings, args: argparse.Namespace, database: Database) -> int:
    try:
        _check_output(args.plot, "--plot")
        _check_output(args.save_tickets, "--save-tickets")
        baseline = _policy(args.baseline or settings.policy_file, "--baseline")
        candidate = _policy(args.policy, "--policy") if args.policy else baseline
        tickets = await _tickets(settings, args, database, [baseline, candidate])
    except (TicketFileError, ValueError, OSError) as err:
        print(f"refused: {err}", file=sys.stderr)
        return 2
    if args.save_tickets:
        try:
            args.save_tickets.write_text(write_csv(tickets), encoding="utf-8")
        except OSError as err:
            print(f"refused: --save-tickets {args.save_tickets}: {err.strerror or err}", file=sys.stderr)
            return 2
    stderr = Console(stderr=True)
    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as bar:
        task = bar.add_task("replays", total=None)
        try:
            sim = await simulate(
                tickets,
                baseline,
                candidate,
                lambda done, total: bar.update(task, completed=done, total=total),
            )
        except TicketFileError as refusal:
            print(f"refused: {refusal}", file=sys.stderr)
            return 2
    print(render(sim, args.fmt), end="")
    if args.plot:
        from simulator.plot import plot

        try:
            plot(sim, args.plot)
        except OSError as err:
            print(f"--plot {args.plot}: not written: {err.strerror or err}", file=sys.stderr)
            return 1
        stderr.print(f"plot written to {args.plot}")
    return 0


PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def _check_output(path: Path | None, flag: str) -> None:
    """Before anything runs: a replay of thousands of tickets is not to end in a path it cannot write."""
    if path is None:
        return
    where = path.parent
    if flag == "--plot" and path.suffix.lower() not in PLOT_SUFFIXES:
        raise ValueError(f"{flag} {path}: the file must end in {', '.join(PLOT_SUFFIXES)}")
    if flag == "--save-tickets" and path.suffix.lower() in JSON_SUFFIXES:
        raise ValueError(
            f"{flag} {path}: the tickets are written as CSV: name the file .csv "
            "(this name would be read back as JSON lines)"
        )
    if not where.is_dir():
        raise ValueError(f"{flag} {path}: there is no directory {where}")
    if path.is_dir():
        raise ValueError(f"{flag} {path}: is a directory")
    if not os.access(where, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"{flag} {path}: not writable")


def _policy(path: Path | str | None, flag: str) -> Policy:
    try:
        return load_policy(path)
    except ValidationError as err:
        raise ValueError(f"{flag} {path}: {field_errors(err)}") from None


async def _tickets(
    settings: Settings, args: argparse.Namespace, database: Database, policies: list[Policy]
) -> list[RecordedTicket]:
    if args.tickets:
        return read_tickets(args.tickets, policies)
    if args.sample is not None:
        if args.sample < 1:
            raise ValueError("--sample must be at least 1")
        return month_of_tickets(args.sample)
    now = datetime.now(UTC)
    async with database(settings) as pool:
        found = await tickets_from_db(pool, now - parse_since(args.since), now)
    if found.cancelled:
        cases = "case" if found.cancelled == 1 else "cases"
        print(
            f"left out {found.cancelled} cancelled {cases} (duplicates, withdrawn tickets)", file=sys.stderr
        )
    return found.tickets
