"""Open support cases and act on them from the command line.

  python starter.py open --ticket-id T-7 --priority P1 --subject "Checkout API down" \\
      --account-id acme --customer-name "Acme Corp" --contact-email ops@acme.example
  python starter.py open --json ticket.json
  python starter.py milestone_verified T-7 --milestone data_verified --by alice
  python starter.py status T-7 --explain

Every action of the wire contract is a command of the same name, its fields are options.
Bad input is refused here, naming each bad field, before anything reaches Temporal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import asyncpg
import structlog
from pydantic import BaseModel, ValidationError

from activities.database import connect as connect_database
from api.serve import DEFAULT_HOST, DEFAULT_PORT, server
from console import outbox, render, views
from console.attention import attention_report
from console.report import parse_since, report_command
from simulator import command as simulator_command
from stack import logs
from stack.cases import CaseAlreadyExists, NotAnsweredYet, open_case, signal_action, update_action
from stack.client import connect, exit_process
from stack.codec_server import codec_app_of
from stack.embedded import start_postgres
from stack.schedules import schedule_standup_command
from stack.serving import serving
from stack.settings import Settings
from stack.web_ui import case_url
from workflows.actions import accepted_while
from workflows.models import ACTIONS, CLOCK_SKEW, CaseInput, case_workflow_id
from workflows.policy import load_policy
from workflows.rules import Refused, field_errors, parse_action

log = structlog.get_logger("starter")

Command = Callable[[Settings, argparse.Namespace], Awaitable[int]]
"""Each starter command is one such function, set as its sub-parser's `handler`."""

CUSTOMER_FLAGS = {
    "account_id": "account-id",
    "name": "customer-name",
    "contact_email": "contact-email",
    "contact_phone": "contact-phone",
    "tam_email": "tam-email",
    "calendar": "calendar",
}
TICKET_FLAGS = ("ticket_id", "priority", "subject", "description", "opened_at", "assignee", "source")


def _ticket_from(args: argparse.Namespace) -> CaseInput:
    if args.json:
        raw = sys.stdin.read() if args.json == "-" else Path(args.json).read_text(encoding="utf-8")
        return CaseInput.model_validate_json(raw)
    data: dict[str, Any] = {k: getattr(args, k) for k in TICKET_FLAGS if getattr(args, k) is not None}
    customer = {k: getattr(args, k) for k in CUSTOMER_FLAGS if getattr(args, k) is not None}
    data["customer"] = customer
    return CaseInput.model_validate(data)


def _add_model_options(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    for name, field in model.model_fields.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            required=field.is_required(),
            help=field.description or f"{name} ({'required' if field.is_required() else 'optional'})",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    opener = commands.add_parser("open", help="open a case for a ticket")
    opener.set_defaults(handler=open_command)
    opener.add_argument("--json", metavar="FILE", help="the ticket as a JSON file ('-' for stdin)")
    for flag in TICKET_FLAGS:
        opener.add_argument(f"--{flag.replace('_', '-')}", dest=flag)
    for field, flag in CUSTOMER_FLAGS.items():
        opener.add_argument(f"--{flag}", dest=field)

    views.add_commands(commands)
    for name in views.COMMANDS:
        commands.choices[name].set_defaults(handler=view_command)

    standup = commands.add_parser("schedule-standup", help="create or update the daily standup schedule")
    standup.set_defaults(handler=schedule_standup)
    standup.add_argument("--at", help="local time in the support calendar's zone (default 09:15)")
    standup.add_argument("--calendar", help="policy calendar (default: the policy's default calendar)")
    codec = commands.add_parser(
        "codec-server", help="decode encrypted payloads for the Web UI and the CLI (ABH_PAYLOAD_KEYS)"
    )
    codec.set_defaults(handler=codec_server_command)
    report = commands.add_parser("report", help="cases, MTTR, intervention, breaches, escalations")
    report.set_defaults(handler=show_report)
    report.add_argument("--since", default="30d", help="window of opened cases: 30d, 2w, 12h (default 30d)")
    output = report.add_mutually_exclusive_group()
    output.add_argument("--json", dest="fmt", action="store_const", const="json", default="table")
    output.add_argument("--csv", dest="fmt", action="store_const", const="csv")

    outbox = commands.add_parser("notifications", help="notifications an operator must look at")
    outbox.set_defaults(handler=outbox_command)
    outbox.add_argument(
        "--state",
        action="append",
        choices=("unknown", "failed", "sending", "pending"),
        help="repeatable (default: unknown and failed)",
    )
    outbox.add_argument("--ticket", help="one case's notifications")
    outbox.add_argument("--limit", type=views.at_least_one, default=100)
    outbox.add_argument("--json", action="store_true", help="JSON for scripts")
    stuck = commands.add_parser("attention", help="everything stuck: retrying cases, outbox, damaged rows")
    stuck.set_defaults(handler=attention_command)
    stuck.add_argument(
        "--all-running", action="store_true", help="also scan every running case's pending activities"
    )
    stuck.add_argument("--json", action="store_true", help="JSON for scripts")
    settle = commands.add_parser(
        "settle-notification", help="record what happened to an e-mail in doubt (state unknown)"
    )
    settle.set_defaults(handler=outbox_command)
    settle.add_argument("dedupe_key")
    verdict = settle.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--sent", dest="verdict", action="store_const", const="sent")
    verdict.add_argument("--failed", dest="verdict", action="store_const", const="failed")
    settle.add_argument("--by", required=True, help="who checked the provider")
    settle.add_argument("--note", help="what the provider showed")

    api = commands.add_parser("serve", help="the HTTP API and the helpdesk webhooks (OpenAPI at /docs)")
    api.set_defaults(handler=serve_command)
    api.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    api.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")

    simulator_command.add_command(commands).set_defaults(handler=simulate_command)

    for action, model in ACTIONS.items():
        meaning = " ".join((model.__doc__ or "").split())
        sub = commands.add_parser(action, help=f"{meaning} (accepted while {accepted_while(model)})")
        sub.set_defaults(handler=action_command)
        sub.add_argument("ticket_id")
        _add_model_options(sub, model)
        sub.add_argument(
            "--signal", action="store_true", help="fire-and-forget: send as a signal, not an update"
        )
        sub.add_argument(
            "--update-id",
            help="the action's idempotency key: sent again with the same one, it is applied once "
            "(default: a new one, printed if the case does not answer in time)",
        )
    return parser


async def run(args: argparse.Namespace) -> int:
    """Run the command `args` names: each has one function, `args.handler`."""
    try:
        settings = Settings.from_env()
    except ValueError as err:
        print(f"refused: {err}", file=sys.stderr)
        return 2
    handler: Command = args.handler
    return await handler(settings, args)


async def open_command(settings: Settings, args: argparse.Namespace) -> int:
    try:
        ticket = _ticket_from(args)
    except ValidationError as err:
        print(f"refused: invalid ticket: {field_errors(err)}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as err:
        print(f"refused: cannot read the ticket file: {err}", file=sys.stderr)
        return 2
    if ticket.opened_at is not None and ticket.opened_at > datetime.now(UTC) + CLOCK_SKEW:
        print(
            f"refused: invalid ticket: opened_at: {ticket.opened_at.isoformat()} is in the future",
            file=sys.stderr,
        )
        return 2
    client = await connect(settings)
    try:
        handle = await open_case(client, ticket, task_queue=settings.task_queue, ui_url=settings.ui_url)
    except CaseAlreadyExists as exists:
        print(f"refused: {exists}", file=sys.stderr)
        return 3
    print(f"opened {handle.id}: {case_url(settings.ui_url, client.namespace, handle.id)}")
    return 0


async def action_command(settings: Settings, args: argparse.Namespace) -> int:
    """One action, checked here first, then sent as an update (or a signal with --signal)."""
    model = ACTIONS[args.command]
    payload = {k: getattr(args, k) for k in model.model_fields if getattr(args, k, None) is not None}
    try:
        parse_action(args.command, payload)
    except Refused as refusal:
        print(f"refused: {refusal}", file=sys.stderr)
        return 2
    client = await connect(settings)
    try:
        if args.signal:
            await signal_action(client, args.ticket_id, args.command, payload)
            print(f"signalled {args.command} to {case_workflow_id(args.ticket_id)}: {json.dumps(payload)}")
            return 0
        status = await update_action(client, args.ticket_id, args.command, payload, update_id=args.update_id)
    except Refused as refusal:
        print(f"refused: {refusal}", file=sys.stderr)
        return 2
    except NotAnsweredYet as waiting:
        print(f"not answered yet: {waiting}", file=sys.stderr)
        return 5
    print(
        f"{args.command} accepted: case {args.ticket_id} is {status.phase.value}, assignee {status.assignee}"
    )
    return 0


async def view_command(settings: Settings, args: argparse.Namespace) -> int:
    """`list`, `status` and `history`: read from Temporal."""
    return await views.run_command(await connect(settings), args)


async def serve_command(settings: Settings, args: argparse.Namespace) -> int:
    """Serve the API until Ctrl-C; it refuses every request when ABH_API_TOKENS is unset."""
    if not settings.api_tokens:
        log.warning("no ABH_API_TOKENS: every request but /healthz will get 401")
    print(f"ABH API on http://{args.host}:{args.port} (OpenAPI docs at /docs)", flush=True)
    await server(settings, host=args.host, port=args.port).serve()
    return 0


async def schedule_standup(settings: Settings, args: argparse.Namespace) -> int:
    client = await connect(settings)
    try:
        text = await schedule_standup_command(
            client, load_policy(settings.policy_file), settings.task_queue, at=args.at, calendar=args.calendar
        )
    except ValueError as err:
        print(f"refused: {err}", file=sys.stderr)
        return 2
    print(text)
    return 0


async def codec_server_command(settings: Settings, args: argparse.Namespace) -> int:
    """Serve /decode and /encode on ABH_CODEC_HOST:ABH_CODEC_PORT until Ctrl-C or SIGTERM."""
    try:
        app = codec_app_of(settings)
    except ValueError as err:
        print(f"refused: {err}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with serving(app, settings.codec_host, settings.codec_port):
        print(
            f"codec server on {settings.codec_endpoint}, for the Web UI at {', '.join(settings.cors_origins)}"
        )
        await stop.wait()
    return 0


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """The configured PostgreSQL, or the embedded one `make run` keeps."""
    url = settings.database_url
    if url is None:
        url = await asyncio.to_thread(start_postgres, settings.data_dir / "postgres")
    pool = await connect_database(url, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


async def show_report(settings: Settings, args: argparse.Namespace) -> int:
    """The report reads PostgreSQL only."""
    fmt: Literal["table", "json", "csv"] = args.fmt
    try:
        since = parse_since(args.since)
    except ValueError as err:
        print(f"refused: {err}", file=sys.stderr)
        return 2
    async with _database(settings) as pool:
        print(await report_command(pool, since, fmt), end="")
    return 0


async def simulate_command(settings: Settings, args: argparse.Namespace) -> int:
    """What if: recorded tickets through a candidate policy; reads PostgreSQL only with --from-db."""
    return await simulator_command.simulate_command(settings, args, _database)


async def outbox_command(settings: Settings, args: argparse.Namespace) -> int:
    """List the notifications needing an operator, or record a verdict on one in doubt."""
    async with _database(settings) as pool:
        if args.command == "settle-notification":
            try:
                row = await outbox.settle(pool, args.dedupe_key, args.verdict, by=args.by, note=args.note)
            except outbox.NotSettled as refusal:
                print(f"refused: {refusal}", file=sys.stderr)
                return 2
            print(f"{row.dedupe_key} is now {row.state}")
            return 0
        workflow_id = case_workflow_id(args.ticket) if args.ticket else None
        rows = await outbox.needing_attention(
            pool, tuple(args.state or ("unknown", "failed")), workflow_id=workflow_id, limit=args.limit
        )
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
    else:
        views.output().print(render.outbox_rows(rows))
    return 0


async def attention_command(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 when nothing needs attention, 1 when something does (for a monitoring check)."""
    client = await connect(settings)
    async with _database(settings) as pool:
        report = await attention_report(client, pool, all_running=args.all_running)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        views.output().print(render.attention(report))
    return 0 if report.empty else 1


def main(argv: list[str] | None = None) -> int:
    logs.configure(level=30)
    return asyncio.run(run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    exit_process(main())
