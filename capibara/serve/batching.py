"""Dynamic batching: many requests, one compiled program per padded shape.

One worker thread owns the model. Each *round* it takes the requests being
generated (up to the batch limit), left-pads every context (prompt plus what
it has generated so far) to the smallest *length bucket* that holds the
longest, pads the rows to the smallest *batch bucket*, and generates
``chunk_tokens`` tokens for all of them in one call
(:meth:`capibara.model.Model.generate` with a ``prompt_mask``, so padding is
invisible). New requests join at the next round and finished ones leave, so a
short request never waits for a long one to end (iteration-level scheduling),
and a streaming client gets its tokens a chunk at a time.

Shapes are few: every (batch bucket, length bucket) pair is compiled at
warm-up, and serving never compiles again (``compilations`` counts it).
Generating ``chunk_tokens`` per round re-reads the context each round; the
round's fixed cost (dispatch, the prefill's weight reads) is shared by the
whole batch, which is where batching's throughput comes from.

The batch limit is ``max_batch_size`` with ``adaptive_batching`` and the
plan's ``batch_size`` (``"auto"`` as the compiler resolved it) without. The
waiting window before a round that has free rows is fixed without
``adaptive_batching``; with it, the window follows the arrival rate: as long
as the rows would fill in, never longer than the configured window, and zero
when requests are rare (waiting would only add latency).
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["Batcher", "Sequence", "ServerClosing", "batch_limit", "batch_window",
           "context_limit", "default_buckets"]


class ServerClosing(RuntimeError):
    """The server is shutting down and takes no new requests."""


def default_buckets(max_batch: int, max_seq_len: int, chunk_tokens: int
                    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Batch buckets: powers of 4 up to ``max_batch`` and ``max_batch`` itself.
    Length buckets: powers of 4 from 64 up to ``max_seq_len - chunk_tokens``, and that.
    (Each pair is one program compiled at warm-up; powers of 4 keep that to a
    few while padding a row at most 4x.)"""
    longest = max_seq_len - chunk_tokens
    batches, size = [], 1
    while size < max_batch:
        batches.append(size)
        size *= 4
    lengths, length = [], 64
    while length < longest:
        lengths.append(length)
        length *= 4
    return tuple(batches) + (max_batch,), tuple(lengths) + (longest,)


def batch_limit(config: Any, plan_batch_size: int, largest_bucket: int) -> int:
    """Rows per round: ``max_batch_size`` with ``adaptive_batching``, else the
    config's ``batch_size`` (``"auto"``: the plan's resolved ``plan_batch_size``);
    never more than the largest compiled batch bucket."""
    if config.adaptive_batching:
        limit = config.max_batch_size
    else:
        limit = plan_batch_size if config.batch_size == "auto" else int(config.batch_size)
    return max(1, min(limit, largest_bucket))


def batch_window(adaptive: bool, arrival_rate: float, max_window_s: float, free_rows: int) -> float:
    """Seconds to wait for more requests before a round with ``free_rows`` rows
    nobody has claimed yet. Fixed without ``adaptive``; with it, as long as
    ``free_rows`` would take to arrive at ``arrival_rate`` (requests a second),
    at most ``max_window_s``, and 0 when fewer than half a request is expected
    within the window (waiting would only add latency)."""
    if not adaptive:
        return max_window_s
    if free_rows <= 0 or arrival_rate * max_window_s < 0.5:
        return 0.0
    return min(max_window_s, free_rows / arrival_rate)


def context_limit(length_buckets: tuple[int, ...]) -> int:
    """The most tokens (prompt plus generated) one request may have: the last round
    starts from at most the longest bucket and adds at least one token."""
    return max(length_buckets) + 1


@dataclass(eq=False)
class Sequence:
    """One request being generated. ``emit(tokens, done, error)`` is called from
    the worker thread with each chunk of new tokens (the caller hands them to
    its own thread or event loop)."""

    prompt: list[int]
    max_new_tokens: int
    emit: Callable[[list[int], bool, BaseException | None], None]
    generated: list[int] = field(default_factory=list)
    cancelled: bool = False

    @property
    def remaining(self) -> int:
        return self.max_new_tokens - len(self.generated)


def _bucket(buckets: tuple[int, ...], size: int) -> int:
    return next(b for b in buckets if b >= size)


class Batcher:
    """The worker thread that batches requests into the model (see the module docstring)."""

    def __init__(self, model: Any, metrics: Any, *, chunk_tokens: int,
                 batch_buckets: tuple[int, ...], length_buckets: tuple[int, ...],
                 window_s: float, plan_batch_size: int) -> None:
        self.model = model
        #: The model's config as of the last update; requests and rounds read this
        #: snapshot (a runtime update swaps it between rounds).
        self.settings = model.get_current_config()
        self.metrics = metrics
        self.chunk_tokens = chunk_tokens
        self.batch_buckets = tuple(sorted(set(batch_buckets)))
        self.length_buckets = tuple(sorted(set(length_buckets)))
        self.max_window_s = window_s
        self.plan_batch_size = plan_batch_size
        self.context_limit = context_limit(self.length_buckets)
        self.ready = threading.Event()
        self.warmup_error: BaseException | None = None
        self.last_round = time.monotonic()
        self._waiting: collections.deque[Sequence] = collections.deque()
        self._controls: collections.deque[tuple[Callable[[], Any], concurrent.futures.Future]] = (
            collections.deque())
        self._active: list[Sequence] = []
        self._lock = threading.Condition()
        self._closing = False
        self._rounds = 0
        self._arrival_rate = 0.0  # requests per second, an exponential moving average
        self._last_arrival: float | None = None
        self._thread = threading.Thread(target=self._run, name="capibara-batcher", daemon=True)

    # ----------------------------------------------------------------- settings

    def batch_limit(self) -> int:
        """Rows per round now (see :func:`batch_limit`)."""
        return batch_limit(self.settings, self.plan_batch_size,
                           self.batch_buckets[-1])

    def window(self, free_rows: int) -> float:
        """How long to wait for more requests now (see :func:`batch_window`)."""
        return batch_window(self.settings.adaptive_batching,
                            self._arrival_rate, self.max_window_s, free_rows)

    # ----------------------------------------------------------------- front door

    def start(self) -> None:
        self._thread.start()

    def submit(self, sequence: Sequence) -> None:
        """Queue ``sequence``; raises :class:`ServerClosing` once :meth:`close` was called."""
        with self._lock:
            if self._closing:
                raise ServerClosing("the server is shutting down")
            now = time.monotonic()
            if self._last_arrival is not None:
                gap = max(now - self._last_arrival, 1e-4)
                self._arrival_rate = 0.8 * self._arrival_rate + 0.2 / gap
            self._last_arrival = now
            self._waiting.append(sequence)
            self.metrics.queue_depth.set(len(self._waiting))
            self._lock.notify_all()

    def between_rounds(self, fn: Callable[[], Any]) -> concurrent.futures.Future:
        """Run ``fn`` on the worker thread between two rounds (no batch sees half of it)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._controls.append((fn, future))
            self._lock.notify_all()
        return future

    def close(self) -> None:
        """Take no new requests; the worker finishes every queued and active one, then stops."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def pending(self) -> int:
        with self._lock:
            return len(self._waiting) + len(self._active)

    # ----------------------------------------------------------------- the worker

    def warm_up(self, phase: str = "warmup") -> int:
        """Compile every (batch, length) bucket; returns how many programs that compiled."""
        before = self._compiled()
        start = time.perf_counter()
        for rows in self.batch_buckets:
            for length in self.length_buckets:
                tokens = np.zeros((rows, length), np.int32)
                mask = np.ones((rows, length), bool)
                np.asarray(self.model.generate(tokens, self.chunk_tokens, prompt_mask=mask))
        compiled = self._compiled() - before
        if compiled:
            self.metrics.compilations.labels(phase).inc(compiled)
            self.metrics.compile_seconds.labels(phase).inc(time.perf_counter() - start)
        return compiled

    def _compiled(self) -> int:
        return self.model.compiled_counts()["generate"]

    def _run(self) -> None:
        try:
            self.warm_up()
        except BaseException as error:  # reported by /health; requests get 503
            self.warmup_error = error
            self._fail_all(error)
            return
        self.metrics.ready.set(1)
        self.ready.set()
        while True:
            self.last_round = time.monotonic()
            controls, stop = self._next_work()
            for fn, future in controls:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn())
                    except BaseException as error:
                        future.set_exception(error)
            if stop:
                return
            if self._active:
                self._round_safely()

    def _next_work(self) -> tuple[list, bool]:
        """Wait for something to do; admit waiting requests into free rows."""
        with self._lock:
            while not self._controls and not self._active and not self._waiting:
                if self._closing:
                    return [], True
                self._lock.wait(timeout=1.0)
                self.last_round = time.monotonic()
            if self._controls:
                controls = list(self._controls)
                self._controls.clear()
                return controls, False
            limit = self.batch_limit()
            free = limit - len(self._active)
            wait = self.window(free - len(self._waiting)) if free > len(self._waiting) else 0.0
            self.metrics.batch_window.set(wait)
            deadline = time.monotonic() + wait
            while len(self._waiting) < free and not self._closing and not self._controls:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(timeout=left)
            while self._waiting and len(self._active) < limit:
                sequence = self._waiting.popleft()
                if not sequence.cancelled:
                    self._active.append(sequence)
            self.metrics.queue_depth.set(len(self._waiting))
            self.metrics.active.set(len(self._active))
            return [], False

    def _round_safely(self) -> None:
        rows = list(self._active)
        try:
            self._round(rows)
        except BaseException as error:  # one bad round fails its requests, not the server
            for sequence in rows:
                sequence.emit([], True, error)
            finished = set(rows)
        else:
            finished = {s for s in rows if s.remaining <= 0 or s.cancelled}
        self._active = [s for s in self._active if s not in finished]
        self.metrics.active.set(len(self._active))

    def _round(self, rows: list[Sequence]) -> None:
        rows = [s for s in rows if not s.cancelled]
        if not rows:
            return
        start = time.perf_counter()
        contexts = [s.prompt + s.generated for s in rows]
        length = _bucket(self.length_buckets, max(len(c) for c in contexts))
        padded_rows = _bucket(self.batch_buckets, len(rows))
        tokens = np.zeros((padded_rows, length), np.int32)
        mask = np.zeros((padded_rows, length), bool)
        mask[len(rows):, -1] = True  # filler rows: one visible token, so no row is all padding
        for i, context in enumerate(contexts):
            tokens[i, length - len(context):] = context
            mask[i, length - len(context):] = True
        before = self._compiled()
        self._rounds += 1
        out = np.asarray(self.model.generate(tokens, self.chunk_tokens, prompt_mask=mask,
                                             seed=self._rounds))
        compiled = self._compiled() - before
        seconds = time.perf_counter() - start
        if compiled:  # a shape no bucket covered, or a setting that changed the program
            self.metrics.compilations.labels("serving").inc(compiled)
            self.metrics.compile_seconds.labels("serving").inc(seconds)
        self.metrics.batch_size.observe(len(rows))
        self.metrics.padded_batch_size.observe(padded_rows)
        if self.settings.performance_profiling:
            self.metrics.round_seconds.observe(seconds)
        for i, sequence in enumerate(rows):
            new = out[i, length:length + min(self.chunk_tokens, sequence.remaining)].tolist()
            sequence.generated.extend(new)
            self.metrics.tokens_generated.inc(len(new))
            sequence.emit(new, sequence.remaining <= 0, None)

    def _fail_all(self, error: BaseException) -> None:
        with self._lock:
            waiting = list(self._waiting) + self._active
            self._waiting.clear()
            self._active = []
            self._closing = True
        for sequence in waiting:
            sequence.emit([], True, error)
