"""``async for`` over a pager, without ever blocking the event loop.

The pager's fetch thread does the network I/O as it always does; it writes
to an eventfd (a pipe off Linux) as each request completes, and the loop watches that fd
(``loop.add_reader``).  The loop thread only ever runs non-blocking steps:
queueing a request, and, once its response is in, decoding that page into
records (the same C code as ``for``).  An OAuth token that must be fetched
(or renewed after a 401) is fetched in the loop's default executor.

So the records, errors, settings and resume points are those of the
synchronous iteration: it is the same pager.  Cancelling the task that
iterates closes the pager (its checkpoint stays readable)."""
from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from ._client import ClientCredentials

# what Pager._poll() answers
READY, WAIT, RENEW = 0, 1, 2
# an OAuth token this close to its expiry is renewed off the loop first
TOKEN_MARGIN = 30.0


def _token_due(auth: Any) -> bool:
    """Would the next request have to fetch a token (a blocking POST)?
    Renewed ahead by TOKEN_MARGIN, or by half its life if that is shorter:
    a token given a short life is not fetched again for every record."""
    if not isinstance(auth, ClientCredentials):
        return False
    if not auth._header:
        return True
    margin = min(TOKEN_MARGIN, (auth._expires - auth._fetched_at) / 2)
    return time.monotonic() >= auth._expires - margin


async def _readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """Wait until the worker has signalled `fd`, then consume the signal."""
    fut = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await fut
    finally:
        loop.remove_reader(fd)
    try:
        os.read(fd, 4096)
    except BlockingIOError:
        pass


async def anext(pager: Any) -> Any:
    """The pager's next record, awaited."""
    loop = asyncio.get_running_loop()
    auth: Any = getattr(pager, "_auth_fn", None)
    try:
        while True:
            if _token_due(auth):
                await loop.run_in_executor(None, auth, True)
            state = pager._poll()
            if state == READY:
                try:
                    return next(pager)         # the page is in: decoding never waits
                except StopIteration:
                    raise StopAsyncIteration from None
            if state == RENEW:
                await loop.run_in_executor(None, auth, True)
                pager._renew()
                continue
            await _readable(loop, pager._async_fd())
    except asyncio.CancelledError:
        pager.close()
        raise
