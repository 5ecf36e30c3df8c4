"""History events of an escalated P1 lifecycle: `python -m bench.history`.

On Temporal's time-skipping server with the default policy: a P1 is opened, the customer contacted,
the case left unresolved past its 60-minute escalation (two milestone warnings and breaches on the way),
then resolved and confirmed after the follow-up. Prints the event types of its history, counted.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
import uuid

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.database import connect, migrate
from activities.policy_source import PolicySource
from stack import logs
from stack.client import register_search_attributes
from stack.embedded import bundled_binary, start_postgres, temporary_postgres
from stack.samples import default_policy, escalated_p1_lifecycle
from worker import build_worker, pin_zone_rules


async def main() -> None:
    pin_zone_rules()
    logs.configure(level=logging.WARNING)
    with temporary_postgres() as data_dir:
        pool = await connect(start_postgres(data_dir), max_size=10)
        await migrate(pool)
        env = await WorkflowEnvironment.start_time_skipping(
            data_converter=pydantic_data_converter,
            test_server_existing_path=bundled_binary("temporal-test-server"),
        )
        await register_search_attributes(env.client)
        source = PolicySource(policy=default_policy())
        tid = f"H-{uuid.uuid4().hex[:8]}"
        async with build_worker(env.client, pool, task_queue="history", policy=source):
            await escalated_p1_lifecycle(env, tid, task_queue="history")
            handle = env.client.get_workflow_handle(f"case-{tid}")
            kinds = collections.Counter(e.event_type for e in (await handle.fetch_history()).events)
        await env.shutdown()
        await pool.close()
    from temporalio.api.enums.v1 import EventType

    print(f"command: python -m bench.history {' '.join(sys.argv[1:])}".rstrip())
    print(f"escalated P1 lifecycle: {sum(kinds.values())} history events")
    for kind, count in kinds.most_common():
        print(f"  {count:4d}  {EventType.Name(kind).removeprefix('EVENT_TYPE_').lower()}")


if __name__ == "__main__":
    asyncio.run(main())
