"""What a borrow from the PostgreSQL pool costs: `python -m bench.pool_borrow [--borrows 5000]`.

Ten tasks borrow a connection for one `SELECT 1` each, over the embedded PostgreSQL, from the worker's
pool (`activities.database.connect`: handed back as it is) and from an asyncpg pool with its default
reset (a `RESET ALL` round trip at each hand-back), alternating, two rounds each. Prints the wall-clock
and client CPU time of a borrow.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg

from activities.database import connect
from bench.stack import header
from stack.embedded import start_postgres, temporary_postgres

AT_ONCE = 10


async def borrows(pool: asyncpg.Pool, count: int) -> tuple[float, float]:
    """Seconds of wall clock and of this process's CPU, a borrow."""

    async def one_task(n: int) -> None:
        for _ in range(n):
            await pool.fetchval("SELECT 1")

    await one_task(200)
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one_task(count // AT_ONCE) for _ in range(AT_ONCE)))
    return (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count


async def main(count: int) -> None:
    header()
    with temporary_postgres() as data_dir:
        url = start_postgres(data_dir)
        pools: dict[str, Callable[[], Awaitable[asyncpg.Pool]]] = {
            "asyncpg's default reset": lambda: asyncpg.create_pool(url, min_size=AT_ONCE, max_size=AT_ONCE),
            "the worker's pool": lambda: connect(url, min_size=AT_ONCE, max_size=AT_ONCE),
        }
        for _ in range(2):
            for name, make in pools.items():
                pool = await make()
                try:
                    wall, cpu = await borrows(pool, count)
                finally:
                    await pool.close()
                print(f"{name}: {wall * 1e6:.0f} us a borrow, {cpu * 1e6:.0f} us of client CPU")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--borrows", type=int, default=5000)
    asyncio.run(main(parser.parse_args().borrows))
