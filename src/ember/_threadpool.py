"""The thread pool that runs ``def`` handlers: cheap dispatch, few wake-ups.

``loop.run_in_executor`` pays per call for a :class:`concurrent.futures.Future`
(with its own lock and condition), ``wrap_future`` chaining, and one
``call_soon_threadsafe`` -- one write to the loop's self-pipe -- per completion.
Here a call is a tuple; the calls submitted during one event-loop iteration are
handed over together (one ``call_soon``), and a worker is woken for them only
when no worker is awake: an awake worker takes every queued call in turn
before it sleeps.  Calls that block still spread over the pool: while calls
wait, the loop checks every millisecond that some worker took one since the
last check, and wakes (or starts) one more worker when none did.  A worker runs
a call in a copy of the caller's :mod:`contextvars` context and appends the
outcome to the loop's completion queue; only the first completion of a batch
wakes the loop, which then resolves every finished future in one callback.

PERF: on a server pinned to one CPU every wake-up of a thread that cannot run
yet (the other thread holds the GIL) costs two context switches for nothing;
waking one worker per batch, not one per queued call, is what makes a trivial
``def`` handler cost about as much as an ``async def`` one (BENCHMARKS.md,
"Issue 9 -- def handlers, phase 2").

What user code observes is unchanged: the function runs in a worker thread (it
may block), its context variables are those of the awaiting task, its exception
(with its traceback) is raised by the ``await``, and cancelling the awaiting
task (a client that disconnects, a request timeout) cancels the future: a call
that has not started yet is skipped, one that is running finishes in its thread
and its result is dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["ThreadPool", "default_pool", "run_sync"]

_get_running_loop = asyncio.get_running_loop
_copy_context = contextvars.copy_context

#: seconds between two checks that queued calls are being taken (see ``_monitor``)
CHECK_INTERVAL = 0.001
#: the longest interval, once every worker is busy (the checks back off to this)
MAX_CHECK_INTERVAL = 0.05


class _Completions:
    """Finished calls of one event loop, waiting for that loop to pick them up.

    NOTE: no lock: ``deque.append``/``popleft`` and attribute stores are atomic under
    the GIL, and ``drain`` clears ``scheduled`` *before* it empties ``done``, so an
    outcome appended after the last ``popleft`` always sees ``scheduled`` false and
    schedules a new drain (two workers may both schedule one: a spare, empty drain).
    """

    __slots__ = ("done", "flush_scheduled", "loop", "outbox", "scheduled", "waking")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.outbox: list[tuple[Any, ...]] = []  # calls not yet handed to the workers
        self.flush_scheduled = False
        self.done: deque[tuple[asyncio.Future, bool, Any]] = deque()
        self.scheduled = False
        self.waking = False  # the loop is waking a worker and drains right after (_flush)

    def post(self, fut: asyncio.Future, ok: bool, value: Any) -> bool:
        """From a worker thread: queue an outcome.  True: the caller owes the loop a
        :meth:`signal` (the first outcome since the last drain); False: one is owed or
        on its way already."""
        self.done.append((fut, ok, value))
        if self.scheduled:
            return False
        self.scheduled = True
        return True

    def signal(self) -> None:
        """From any thread: have the loop drain (one write to its self-pipe)."""
        try:
            self.loop.call_soon_threadsafe(self.drain)
        except RuntimeError:  # NOTE: the loop is closed; nobody is awaiting any more
            self.done.clear()
            self.scheduled = False

    def drain(self) -> None:
        """On the loop: resolve every future finished since the last wake-up."""
        self.scheduled = False
        done = self.done
        while done:
            fut, ok, value = done.popleft()
            if fut.done():  # cancelled meanwhile (client gone, timeout)
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)


class ThreadPool:
    """A fixed-maximum pool of daemon worker threads, started on demand.

    ``max_workers`` (int >= 1; ``ValueError`` otherwise) defaults to
    ``min(32, os.cpu_count() + 4)`` (what :class:`~concurrent.futures.ThreadPoolExecutor`
    uses).  Threads are named ``ember-sync-N``; none starts before the first call.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is None:
            max_workers = min(32, (os.cpu_count() or 1) + 4)
        if not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1:
            raise ValueError(f"max_workers must be a positive int, got {max_workers!r}")
        self.max_workers = max_workers
        self._reset()

    def _reset(self) -> None:
        self._items: deque[tuple[Any, ...]] = deque()  # calls not yet taken by a worker
        self._lock = threading.Lock()  # guards _idle, _threads and the decision to sleep
        self._threads: list[threading.Thread] = []
        self._pipes: set[tuple[int, int]] = set()  # the workers' wake-up pipes (read, write)
        self._idle: list[int] = []  # wake-up pipes (write ends) of sleeping workers
        self._started = 0  # threads ever started (for their names)
        self._taken = 0  # calls taken by workers (a progress counter for _monitor)
        self._owed: set[_Completions] = set()  # outcomes posted, their loop not woken yet
        self._stopping = False
        self._monitor_loop: Any = None  # the loop whose timer checks progress, if any
        self._last_loop: Any = None
        self._last_completions: _Completions | None = None
        self._completions: dict[int, _Completions] = {}

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> asyncio.Future:
        """Run ``fn(*args, **kwargs)`` in a worker; a future of the running loop.

        Must be called on a running event loop (``RuntimeError`` otherwise), and
        before :meth:`shutdown` (``RuntimeError`` after).
        """
        loop = _get_running_loop()
        if self._stopping:
            raise RuntimeError("this ThreadPool is shut down")
        comp = self._last_completions if loop is self._last_loop else self._completions_for(loop)
        fut = loop.create_future()
        comp.outbox.append((fut, comp, _copy_context(), fn, args, kwargs))
        if not comp.flush_scheduled:
            # PERF: hand the calls over at the end of this loop iteration, in one go: waking
            # a worker now would only make it wait for the GIL the loop still holds.
            comp.flush_scheduled = True
            loop.call_soon(self._flush, comp)
        return fut

    def submit_kwargs(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> asyncio.Future:
        """``submit(fn, **kwargs)`` without re-packing ``kwargs`` (the protocol's fast path
        for path parameters).  The call itself unpacks it: ``fn`` cannot change the dict."""
        loop = _get_running_loop()
        if self._stopping:
            raise RuntimeError("this ThreadPool is shut down")
        comp = self._last_completions if loop is self._last_loop else self._completions_for(loop)
        fut = loop.create_future()
        comp.outbox.append((fut, comp, _copy_context(), fn, (), kwargs))
        if not comp.flush_scheduled:
            comp.flush_scheduled = True
            loop.call_soon(self._flush, comp)
        return fut

    def _flush(self, comp: _Completions) -> None:
        comp.flush_scheduled = False
        outbox, comp.outbox = comp.outbox, []
        self._items.extend(outbox)
        with self._lock:
            # PERF: an awake worker takes these calls once its current one returns; wake
            # one only when none is awake.  _monitor covers an awake worker that blocks.
            helper = self._helper_locked() if len(self._idle) == len(self._threads) else None
        if helper is not None:
            comp.waking = True
            try:
                self._release(helper)
            finally:
                comp.waking = False
            if comp.done:
                # PERF: on one CPU the woken worker ran the whole batch while this thread
                # waited for the GIL: resolve it now, without a self-pipe round trip and
                # one more loop iteration (workers skip the signal while ``waking``).
                comp.drain()
        loop = comp.loop
        current = self._monitor_loop
        if current is None or (current is not loop and not current.is_running()):
            # NOTE: one check at a time, on a running loop (a stopped loop's timer never fires)
            self._monitor_loop = loop
            loop.call_later(CHECK_INTERVAL, self._monitor, loop, self._taken, CHECK_INTERVAL)

    def _monitor(self, loop: Any, taken: int, interval: float) -> None:
        """On the loop, while calls wait: add a worker when none was taken for a while.

        NOTE: the calls in progress may all block (a slow database, ``time.sleep``); the
        queued ones must not wait for them.  A worker that took nothing for a whole
        interval is such a case, so one more worker is woken (or started) per interval
        until the pool is full; then the checks back off to MAX_CHECK_INTERVAL.
        """
        if self._monitor_loop is not loop:
            return  # superseded by a check on another loop
        # NOTE: read the queue before the outcomes owed: a worker adds to _owed before it
        # takes its next call, so an outcome it still owes is seen here or next time.
        waiting = bool(self._items)
        if self._owed:  # a worker went on to a call that may block: deliver these now
            self._signal_owed()
        if not waiting or self._stopping:
            self._monitor_loop = None
            return
        if self._taken == taken:
            with self._lock:
                helper = self._helper_locked()
            self._release(helper)
            interval = CHECK_INTERVAL if helper is not None else min(interval * 2,
                                                                     MAX_CHECK_INTERVAL)
        else:
            interval = CHECK_INTERVAL
        try:
            loop.call_later(interval, self._monitor, loop, self._taken, interval)
        except RuntimeError:  # NOTE: the loop is closing; the next _flush re-arms the check
            self._monitor_loop = None

    def _helper_locked(self) -> Any:
        """With the lock held: one more worker (a sleeping one's wake-up pipe to write to,
        or a Thread to start), or None when the pool is full or stopping."""
        if self._stopping:
            return None
        if self._idle:
            return self._idle.pop()  # PERF: the last one to sleep: its caches are warm
        if len(self._threads) < self.max_workers:
            try:
                pipe = os.pipe()
            except OSError:  # NOTE: out of file descriptors: _monitor tries again later
                return None
            self._pipes.add(pipe)
            t = threading.Thread(target=self._work, args=(pipe,),
                                 name=f"ember-sync-{self._started}", daemon=True)
            self._started += 1
            self._threads.append(t)
            return t
        return None

    def _release(self, helper: Any) -> None:
        if helper is None:
            return
        if isinstance(helper, threading.Thread):
            try:
                helper.start()
            except RuntimeError:  # "can't start new thread": _monitor tries again later
                with self._lock:
                    self._threads.remove(helper)
                self._close_pipe(*helper._args[0])  # type: ignore[attr-defined]
        else:
            # PERF: os.write drops the GIL *before* the write wakes the worker, so the
            # worker finds the GIL free and runs its calls at once; a Lock.release() would
            # wake it with the GIL still held here: it would run only to block on the GIL.
            os.write(helper, b"\0")

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

    def _signal_owed(self) -> None:
        owed = self._owed
        while owed:
            try:
                comp = owed.pop()
            except KeyError:  # NOTE: another thread took the last one
                break
            if not comp.waking:  # NOTE: else the loop drains as soon as it has the GIL
                comp.signal()

    def _close_pipe(self, wake_r: int, wake_w: int) -> None:
        self._pipes.discard((wake_r, wake_w))
        os.close(wake_r)
        os.close(wake_w)

    def _work(self, pipe: tuple[int, int]) -> None:
        try:
            self._work_loop(*pipe)
        finally:
            self._close_pipe(*pipe)

    def _work_loop(self, wake_r: int, wake_w: int) -> None:
        items = self._items
        lock = self._lock
        idle = self._idle
        owed = self._owed
        run = self._run
        while True:
            try:
                item = items.popleft()
            except IndexError:
                if owed:
                    # PERF: the loop is woken once this worker runs out of calls, not after
                    # the first of a batch: a loop woken while a worker holds the GIL only
                    # goes back to sleep (two context switches for nothing).  A call that
                    # blocks before that point is covered by _monitor (it signals).
                    self._signal_owed()
                with lock:
                    if items:
                        continue  # NOTE: raced with a _flush: take those calls
                    if self._stopping:
                        self._threads.remove(threading.current_thread())
                        return
                    idle.append(wake_w)
                os.read(wake_r, 64)  # sleep until _flush, _monitor or shutdown writes
                continue
            self._taken += 1
            run(item)
            del item  # NOTE: drop the call's references before this thread may sleep

    def _run(self, item: tuple[Any, ...]) -> None:
        fut, comp, ctx, fn, args, kwargs = item
        if fut.done():  # NOTE: a racy read; at worst a cancelled call still runs
            return
        try:
            value = ctx.run(fn, *args, **kwargs)
        except BaseException as exc:
            if isinstance(exc, StopIteration):  # a Future refuses StopIteration
                exc = RuntimeError(f"sync handler raised StopIteration: {exc!r}")
            owes = comp.post(fut, False, exc)
        else:
            owes = comp.post(fut, True, value)
        if owes:
            self._owed.add(comp)

    def shutdown(self, wait: bool = True, timeout: float | None = 10.0) -> bool:
        """Stop the workers once the queued calls are done; with ``wait``, join them.

        ``timeout`` (seconds, None: no limit) bounds the whole join, so a call that
        never returns cannot hang the caller (the threads are daemon threads).
        Returns True when every worker has exited.  Later ``submit`` calls raise
        ``RuntimeError``.  Must not be called from a worker thread (``RuntimeError``).
        """
        with self._lock:
            self._stopping = True
            sleeping, self._idle = self._idle, []
            threads = list(self._threads)
        if threading.current_thread() in threads:
            raise RuntimeError("ThreadPool.shutdown() called from one of its own workers")
        for wake_w in sleeping:
            os.write(wake_w, b"\0")
        if not wait:
            return not threads
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)


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
    # NOTE: threads do not survive fork(); a worker process starts with an empty pool
    # (and closes the parent's wake-up pipes, which it inherited).
    if _default is not None:
        for pipe in list(_default._pipes):
            for fd in pipe:
                try:
                    os.close(fd)
                except OSError:
                    pass
        _default._reset()


os.register_at_fork(after_in_child=_after_fork)
