"""The thread pool that runs ``def`` handlers: cheap dispatch, batched wake-ups.

``loop.run_in_executor`` pays per call for a :class:`concurrent.futures.Future`
(with its own lock and condition), ``wrap_future`` chaining, and one
``call_soon_threadsafe`` -- one write to the loop's self-pipe -- per completion.
Here a call is a tuple; the calls submitted during one event-loop iteration are
handed over together (one ``call_soon``), and at most one worker is woken for
them: a worker that takes a call wakes the next one only while calls remain and
nobody else is looking for them (so quick calls wake ~1 thread per batch, and
calls that block still spread over the pool).  A worker runs a call in a copy of
the caller's :mod:`contextvars` context and appends the outcome to the loop's
completion list; only the first completion of a batch wakes the loop, which then
resolves every finished future in one callback.

What user code observes is unchanged: the function runs in a worker thread (it
may block), its context variables are those of the awaiting task, its exception
is raised by the ``await``, and cancelling the awaiting task (a client that
disconnects) cancels the future: a call that has not started yet is skipped, one
that is running finishes in its thread and its result is dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["ThreadPool", "default_pool", "run_sync"]

class _Completions:
    """Finished calls of one event loop, waiting for that loop to pick them up."""

    __slots__ = ("done", "flush_scheduled", "lock", "loop", "outbox", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.outbox: list[tuple[Any, ...]] = []  # calls not yet handed to the workers
        self.flush_scheduled = False
        self.lock = threading.Lock()
        self.done: list[tuple[asyncio.Future, bool, Any]] = []
        self.scheduled = False

    def post(self, fut: asyncio.Future, ok: bool, value: Any) -> None:
        """From a worker thread: queue an outcome; wake the loop once per batch."""
        with self.lock:
            self.done.append((fut, ok, value))
            if self.scheduled:
                return
            self.scheduled = True
        try:
            self.loop.call_soon_threadsafe(self.drain)
        except RuntimeError:  # NOTE: the loop is closed; nobody is awaiting any more
            with self.lock:
                self.done.clear()
                self.scheduled = False

    def drain(self) -> None:
        """On the loop: resolve every future finished since the last wake-up."""
        with self.lock:
            done, self.done = self.done, []
            self.scheduled = False
        for fut, ok, value in done:
            if fut.done():  # cancelled meanwhile (client gone)
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)


class ThreadPool:
    """A fixed-maximum pool of daemon worker threads, started on demand.

    ``max_workers`` defaults to ``min(32, os.cpu_count() + 4)`` (what
    :class:`~concurrent.futures.ThreadPoolExecutor` uses).
    """

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is None:
            max_workers = min(32, (os.cpu_count() or 1) + 4)
        if not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1:
            raise ValueError(f"max_workers must be a positive int, got {max_workers!r}")
        self.max_workers = max_workers
        self._reset()

    def _reset(self) -> None:
        self._work_items: deque[tuple[Any, ...]] = deque()  # calls not yet taken by a worker
        self._tokens: queue.SimpleQueue = queue.SimpleQueue()  # one token wakes one worker
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # workers asleep (waiting for a token)
        self._searching = 0  # workers woken (or started) that have not taken a call yet
        self._stopping = False
        self._last_loop: Any = None
        self._last_completions: _Completions | None = None
        self._completions: dict[int, _Completions] = {}

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> asyncio.Future:
        """Run ``fn(*args, **kwargs)`` in a worker; a future of the running loop.

        Must be called on a running event loop (``RuntimeError`` otherwise).
        """
        loop = asyncio.get_running_loop()
        comp = self._last_completions if loop is self._last_loop else self._completions_for(loop)
        fut = loop.create_future()
        comp.outbox.append((fut, comp, contextvars.copy_context(), fn, args, kwargs))
        if not comp.flush_scheduled:
            # PERF: hand the calls over at the end of this loop iteration, in one go: waking
            # a worker now would only make it wait for the GIL the loop still holds.
            comp.flush_scheduled = True
            loop.call_soon(self._flush, comp)
        return fut

    def _flush(self, comp: _Completions) -> None:
        comp.flush_scheduled = False
        outbox, comp.outbox = comp.outbox, []
        self._work_items.extend(outbox)
        self._wake_one()

    def _wake_one(self) -> None:
        """Make sure one worker is looking for calls (woken, or started when none sleeps).

        PERF: one at a time, not one per call: a worker that takes a call wakes the next
        one only while calls remain and nobody else is looking (see _work), so a batch of
        quick calls wakes ~1 thread, and calls that block still spread over the pool.
        """
        with self._lock:
            helper = self._helper_locked()
        self._release(helper)

    def _helper_locked(self) -> Any:
        """With the lock held: a searching worker to add (True: wake one; a Thread: start it),
        or None when one is already searching, or every worker is busy (the first one free
        then takes the calls)."""
        if self._searching > 0 or self._stopping:
            return None
        if self._idle > 0:
            self._idle -= 1
            self._searching += 1
            return True
        if len(self._threads) < self.max_workers:
            self._searching += 1
            t = threading.Thread(target=self._work, name=f"ember-sync-{len(self._threads)}",
                                 daemon=True)
            self._threads.append(t)
            return t
        return None

    def _release(self, helper: Any) -> None:
        if helper is True:
            self._tokens.put(None)
        elif helper is not None:
            helper.start()

    def _completions_for(self, loop: asyncio.AbstractEventLoop) -> _Completions:
        comp = self._completions.get(id(loop))
        if comp is None or comp.loop is not loop:
            comp = _Completions(loop)
            # NOTE: dead loops' entries are dropped here, so the table stays small.
            self._completions = {k: c for k, c in self._completions.items()
                                 if not c.loop.is_closed()}
            self._completions[id(loop)] = comp
        self._last_loop, self._last_completions = loop, comp
        return comp

    def _work(self) -> None:
        items = self._work_items
        lock = self._lock
        searching = True  # started (or woken) as the searching worker
        while True:
            try:
                item = items.popleft()
            except IndexError:
                item = None
            helper = None
            with lock:
                if item is None and items:
                    continue  # NOTE: raced with a _flush that saw us searching: look again
                if searching:
                    self._searching -= 1
                    searching = False
                if item is None:
                    if self._stopping:
                        return
                    self._idle += 1
                elif items:
                    # NOTE: more calls wait: make sure someone looks for them, in case
                    # this call blocks.
                    helper = self._helper_locked()
            if item is None:
                self._tokens.get()  # sleep until _wake_one (or shutdown) hands a token
                searching = True
                continue
            if helper is not None:
                self._release(helper)
            self._run(item)
            del item

    @staticmethod
    def _run(item: tuple[Any, ...]) -> None:
        fut, comp, ctx, fn, args, kwargs = item
        if fut.done():  # NOTE: a racy read; at worst a cancelled call still runs
            return
        try:
            value = ctx.run(fn, *args, **kwargs)
        except BaseException as exc:
            if isinstance(exc, StopIteration):  # a Future refuses StopIteration
                exc = RuntimeError(f"sync handler raised StopIteration: {exc!r}")
            comp.post(fut, False, exc)
        else:
            comp.post(fut, True, value)

    def shutdown(self) -> None:
        """Stop the workers once the queued calls are done (they are daemon threads)."""
        with self._lock:
            self._stopping = True
            sleeping = self._idle
            self._idle = 0
        for _ in range(sleeping + len(self._threads)):
            self._tokens.put(None)
        self._threads = []


_default: ThreadPool | None = None


def default_pool() -> ThreadPool:
    """The process-wide pool for ``def`` handlers (created on first use)."""
    global _default
    if _default is None:
        _default = ThreadPool()
    return _default


def run_sync(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> asyncio.Future:
    """``await run_sync(fn, *args, **kwargs)``: ``fn`` in the default pool's worker thread.

    The call sees a copy of the caller's context variables; its exception is raised
    by the ``await``; cancelling the awaiting task cancels the call if it has not
    started (a started call finishes in its thread, its result dropped).
    """
    pool = _default if _default is not None else default_pool()
    return pool.submit(fn, *args, **kwargs)


def _after_fork() -> None:
    # NOTE: threads do not survive fork(); a worker process starts with an empty pool.
    if _default is not None:
        _default._reset()


os.register_at_fork(after_in_child=_after_fork)
