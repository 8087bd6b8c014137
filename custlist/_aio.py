"""``async for`` over a pager, without ever blocking the event loop.

The pager's fetch thread does the network I/O as it always does, and, as
in ``for``, sends the listing's next request itself as each page arrives
(up to two pages ahead of the consumer); it writes to an eventfd (a pipe
off Linux) as each request completes, and the loop watches that fd
(``loop.add_reader``).  The loop thread only ever runs non-blocking steps:
queueing a request the fetch thread could not send (the first, or one
after a page read otherwise than it expected), and, once a page is in,
taking it and decoding it into records (the same C code as ``for``).

An OAuth token that must be fetched (the first, one that expired, or one a
401 refused) is fetched in the loop's default executor before the step that
needs it, and one token request serves every listing of those credentials
that needs it meanwhile.  On the loop thread the credentials only hand out
the token in hand: they never fetch nor wait for their lock there.  A token
request that failed fails the step that needed the token, as in ``for``.

So the records, errors, settings and resume points are those of the
synchronous iteration: it is the same pager.  One task at a time awaits a
pager's next record: another task asking meanwhile gets RuntimeError, as a
second thread does.  A pager closed while its task waited raises
PagerClosedError there, as in a waiting thread.  Cancelling the task while
it awaits the pager closes the pager (its checkpoint stays exact); so does
leaving ``async with pager:`` (Pager.__aexit__), whatever ends the block."""
from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Awaitable, Callable, TypeVar

from ._client import _ON_LOOP, ClientCredentials, LoopSide
from .errors import PagerClosedError

T = TypeVar("T")

# what Pager._poll() answers
READY, WAIT, RENEW, SEND, LOADED, DECODE, REFUSED, RESEND = 0, 1, 2, 3, 4, 5, 6, 7
# a 401 answered: the loop has credentials in hand, then _renew() sends again
RENEWING = (RENEW, REFUSED, RESEND)


class _State:
    """A pager's asyncio bookkeeping: held while a task awaits its next
    record, and the token its request in flight carries."""

    __slots__ = ("lock", "sent")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: str | None = None


_MAKING = threading.Lock()     # one _State per pager, whichever thread comes first


def _step(state: _State, error: BaseException | None, fn: Callable[..., Any],
          *args: Any) -> Any:
    """Call into the pager on the loop thread, the credentials handing out
    the token in hand (or raising `error` if one is asked for)."""
    side = LoopSide(error)
    reset = _ON_LOOP.set(side)
    try:
        return fn(*args)
    finally:
        _ON_LOOP.reset(reset)
        if side.sent is not None:
            state.sent = side.sent


async def _token(auth: ClientCredentials, stale: str | None,
                 loop: asyncio.AbstractEventLoop) -> BaseException | None:
    """Have a usable token in hand, fetched off the loop (joining a request
    already under way); the failure of that request, if it failed, is
    returned for the step that needs the token to raise."""
    def start(job: Callable[[], None]) -> object:
        return loop.run_in_executor(None, job)

    for _ in range(2):      # a request joined may have been for another reason
        flight = auth._token_request(stale, start)
        if flight is None:
            return None
        try:
            await asyncio.wrap_future(flight)   # cancelling this task leaves it to the others
        except Exception as e:
            return e
        if stale is None or auth._header != stale:
            return None
    return None


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


def _closed_while_waiting() -> PagerClosedError:
    return PagerClosedError("the pager was closed while a page was being fetched; resume from "
                            "its cursor or next_href with a new pager")


async def _awaiting(pager: Any, step: Awaitable[T]) -> T:
    """Await `step`; cancelled (or failing) there, the pager closes, as an
    iteration that fails does.  Its position stays: the checkpoint is exact.
    (A step on the pager that fails closes it itself where next() would.)"""
    try:
        return await step
    except BaseException:
        pager.close()
        raise


async def anext(pager: Any) -> Any:
    """The pager's next record, awaited."""
    state: _State | None = getattr(pager, "_aio", None)
    if state is None:
        with _MAKING:
            state = getattr(pager, "_aio", None)
            if state is None:
                state = pager._aio = _State()
    if not state.lock.acquire(blocking=False):
        raise RuntimeError("this pager is in use by another task: one async for at a time "
                           "over a pager")
    try:
        return await _next(pager, state)
    except BaseException:
        end = getattr(pager, "_end_progress", None)
        if end is not None:         # a progress bar ends with the listing, as in for
            end()
        raise
    finally:
        state.lock.release()


async def _next(pager: Any, state: _State) -> Any:
    loop = asyncio.get_running_loop()
    auth: Any = getattr(pager, "_auth_fn", None)
    creds = auth if isinstance(auth, ClientCredentials) else None
    waited = False        # for a page or a token: a close() meanwhile is an error here
    poll = _step(state, None, pager._poll)
    while poll != READY:
        if poll == WAIT:
            waited = True
            fd = pager._async_fd()
            if fd >= 0:                         # else closed meanwhile
                await _awaiting(pager, _readable(loop, fd))
            poll = _step(state, None, pager._poll)
            continue
        if poll == DECODE:                      # a page in, and no request after it
            _step(state, None, pager._load)
            poll = _step(state, None, pager._poll)
            continue
        # SEND, LOADED, a 401: the step may ask for a token; have it in hand
        error: BaseException | None = None
        if creds is not None and (poll in (RENEW, REFUSED) or not creds._usable(None)):
            waited = True
            # the token refused: the one this loop handed out, or (sent by
            # the fetch thread) the client's current one
            stale = (state.sent or creds._header) if poll == RENEW else \
                creds._header if poll == REFUSED else None
            error = await _awaiting(pager, _token(creds, stale, loop))
        elif poll == RENEW and auth is not None:
            waited = True
            await _awaiting(pager, loop.run_in_executor(None, auth, True))
        if poll == SEND:
            poll = _step(state, error, pager._poll, True)
            continue
        _step(state, error, pager._renew if poll in RENEWING else pager._load)
        poll = _step(state, None, pager._poll)
    try:
        return _step(state, None, pager.__next__)   # neither the network nor a token
    except StopIteration:
        if waited and not pager.done:
            raise _closed_while_waiting() from None
        raise StopAsyncIteration from None
