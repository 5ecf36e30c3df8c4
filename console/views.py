"""The operator's views of cases: visibility listings, the next deadline, and the `list`, `status` and
`history` commands of `starter.py`.

Listings read Temporal visibility (the case search attributes), so they need no worker and no database;
`status` and `history` query the case itself.
"""

from __future__ import annotations

import argparse
import os
import sys

from pydantic import TypeAdapter
from rich.console import Console
from temporalio.client import Client, WorkflowExecution
from temporalio.service import RPCError, RPCStatusCode

from console import render
from console.read_models import CaseRow
from stack.cases import CaseFailed, case_status
from workflows import search
from workflows.models import WORKFLOW_TYPE, CaseStatus, Phase, Priority, TimelineEntry

COMMANDS = frozenset({"list", "status", "history"})
OPEN = "open"  # a pseudo-phase for `--phase open`: every phase but closed
DEFAULT_LIMIT = 100


_ROWS = TypeAdapter(list[CaseRow])
_TIMELINE = TypeAdapter(list[TimelineEntry])


def row_of(execution: WorkflowExecution) -> CaseRow:
    attrs = execution.typed_search_attributes
    prefix = "case-"
    wid = execution.id
    return CaseRow(
        workflow_id=wid,
        ticket_id=wid[len(prefix) :] if wid.startswith(prefix) else wid,
        priority=attrs.get(search.CASE_PRIORITY),
        phase=attrs.get(search.CASE_PHASE),
        customer=attrs.get(search.CASE_CUSTOMER),
        assignee=attrs.get(search.CASE_ASSIGNEE),
        escalated=bool(attrs.get(search.CASE_ESCALATED)),
        breached=bool(attrs.get(search.CASE_SLA_BREACHED)),
        opened_at=attrs.get(search.CASE_OPENED_AT),
        status=execution.status.name if execution.status is not None else None,
        closed_at=execution.close_time,
    )


async def list_cases(client: Client, query: str, *, limit: int | None = None) -> list[CaseRow]:
    """Cases matching a visibility query, newest first as the server returns them."""
    return [row_of(execution) async for execution in client.list_workflows(query, limit=limit)]


def quoted(value: str) -> str:
    """A string literal for a visibility query, escaped so a value can never end it early.

    Apostrophes match as they are. A value holding `"` or a backslash is safe to send but matched
    nothing on the dev server's SQLite visibility (Temporal CLI 1.9.1) when this was written.
    """
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_query(
    priority: str | None = None,
    phase: str | None = None,
    customer: str | None = None,
    escalated: bool | None = None,
    breached: bool | None = None,
    extra: str | None = None,
    *,
    assignee: str | None = None,
) -> str:
    """The visibility query for the `list` filters; `None` leaves a filter out.

    Always scoped to the case workflow type, so other workflows in the namespace never show up as
    cases. `phase="open"` means every phase but closed, of a running case. `extra` is ANDed in, parenthesised.
    """
    terms = [f"WorkflowType={quoted(WORKFLOW_TYPE)}"]
    if priority is not None:
        terms.append(f"{search.CASE_PRIORITY.name}={quoted(Priority(priority).value)}")
    if phase == OPEN:
        # A case whose run failed still reads the phase it began in: it is not open.
        terms.append(f"{search.CASE_PHASE.name}!={quoted(Phase.CLOSED.value)}")
        terms.append('ExecutionStatus="Running"')
    elif phase is not None:
        terms.append(f"{search.CASE_PHASE.name}={quoted(Phase(phase).value)}")
    if customer is not None:
        terms.append(f"{search.CASE_CUSTOMER.name}={quoted(customer)}")
    if assignee is not None:
        terms.append(f"{search.CASE_ASSIGNEE.name}={quoted(assignee)}")
    if escalated is not None:
        terms.append(f"{search.CASE_ESCALATED.name}={str(escalated).lower()}")
    if breached is not None:
        terms.append(f"{search.CASE_SLA_BREACHED.name}={str(breached).lower()}")
    if extra and extra.strip():
        terms.append(f"({extra.strip()})")
    return " AND ".join(terms)


def rows_json(rows: list[CaseRow]) -> str:
    return _ROWS.dump_json(rows, indent=2).decode()


def timeline_json(status: CaseStatus) -> str:
    return _TIMELINE.dump_json(status.timeline, indent=2).decode()


# starter.py commands.


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `list`, `status` and `history` on starter.py's sub-command parser."""
    lister = commands.add_parser("list", help="list cases from Temporal visibility, with filters")
    lister.add_argument("--query", help="a visibility query ANDed with the filters")
    lister.add_argument("--priority", choices=[p.value for p in Priority])
    lister.add_argument("--phase", choices=[*(p.value for p in Phase), OPEN], help="'open': not closed")
    lister.add_argument("--customer", metavar="ACCOUNT_ID")
    lister.add_argument("--assignee")
    lister.add_argument("--escalated", action=argparse.BooleanOptionalAction, default=None)
    lister.add_argument("--breached", action=argparse.BooleanOptionalAction, default=None)
    lister.add_argument(
        "--limit", type=at_least_one, default=DEFAULT_LIMIT, help=f"at most (default {DEFAULT_LIMIT})"
    )
    lister.add_argument("--json", action="store_true", help="JSON for scripts")

    status = commands.add_parser("status", help="the case at a glance")
    status.add_argument("ticket_id")
    status.add_argument("--json", action="store_true", help="the whole `status` query result")
    status.add_argument("--explain", action="store_true", help="how each due instant was reached")

    history = commands.add_parser("history", help="the case's timeline")
    history.add_argument("ticket_id")
    history.add_argument("--json", action="store_true", help="JSON for scripts")


def output() -> Console:
    """The terminal's width on a terminal; a wide page when written to a file or a pipe, where rich would
    otherwise squeeze every table into 80 columns and drop some of them."""
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        return Console()
    return Console(width=200)


def at_least_one(text: str) -> int:
    """An argparse type: a count of 1 or more."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


async def run_command(client: Client, args: argparse.Namespace, console: Console | None = None) -> int:
    """Run one of COMMANDS; 4 when the ticket has no case."""
    out = console or output()
    if args.command == "list":
        query = build_query(
            args.priority,
            args.phase,
            args.customer,
            args.escalated,
            args.breached,
            args.query,
            assignee=args.assignee,
        )
        try:
            rows = await list_cases(client, query, limit=args.limit)
        except RPCError as err:
            if err.status is not RPCStatusCode.INVALID_ARGUMENT:
                raise
            print(f"refused: {err.message}", file=sys.stderr)
            return 2
        if args.json:
            out.out(rows_json(rows), highlight=False)
        else:
            out.print(render.case_list(rows, query=query))
        return 0
    try:
        status = await case_status(client, args.ticket_id)
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        print(f"ticket {args.ticket_id} has no case", file=sys.stderr)
        return 4
    except CaseFailed as failed:
        print(failed, file=sys.stderr)
        return 4
    if args.command == "history" and args.json:
        out.out(timeline_json(status), highlight=False)
    elif args.command == "history":
        out.print(render.history(status))
    elif args.json:
        out.out(status.model_dump_json(indent=2), highlight=False)
    elif args.explain:
        out.out(render.explain(status), highlight=False)
    else:
        out.print(render.card(status))
    return 0
