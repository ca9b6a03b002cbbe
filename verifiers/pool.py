"""Batched verification in worker processes that can be killed.

Each worker is a separate process holding its own verifier instances. The parent hands out one
item at a time and keeps a wall-clock deadline for it; a worker that overruns (sympy lost in
`9^{9^{9^9}}`, a regex that backtracks forever) or dies (out of memory, a segfault) is killed,
the item gets status `timeout` or `crash`, and a fresh worker takes its place. The batch always
returns, one VerificationResult per item, in order. Signal-based timeouts (math-verify's) still
work inside workers, because each runs verifiers on its main thread. A worker that died while idle is replaced when it is next given an
item, and the item goes to another.

    with VerifierPool({"math": {}, "code": {"mode": "fraction"}}, workers=2, timeout_s=10) as pool:
        results = pool.verify_batch(responses, references, names)

Stragglers do not hold the batch hostage: when every worker has been on its item for more than
`straggler_s` and items are waiting, an extra worker is started (up to `max_workers`), so slow
items run their deadlines side by side instead of one after another, and a batch with a few
pathological items returns in about one timeout. Extra workers are retired after the batch.

`workers=0` verifies in the calling process (no hard timeout; for debugging). Plug-in modules are
imported by the pool itself (in the parent, then in each worker), never while a config is validated.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from verifiers.base import VerificationResult, safe_verify
from verifiers.registry import import_plugins, require

STARTUP_S = 120.0  # a worker that has not imported its verifiers by then is broken
START_ATTEMPTS = 3  # workers dying while starting this many times in a row: a broken plug-in, not bad luck


def _worker_main(conn: Connection, options: dict[str, dict], plugins: list[str]) -> None:
    import importlib

    from verifiers.registry import get_verifier

    for module in plugins:
        importlib.import_module(module)
    conn.send("ready")  # item deadlines start only now, not during start-up imports
    cache: dict[str, Any] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if msg is None:
            return
        index, name, response, reference = msg
        try:
            if name not in cache:
                cache[name] = get_verifier(name, **options.get(name, {}))
            result = safe_verify(cache[name], response, reference)
        except Exception as exc:  # an unknown name, bad options
            result = VerificationResult(0.0, False, "crash", None, f"{type(exc).__name__}: {exc}")
        conn.send((index, result))


def _death(process) -> str:
    """How a worker process ended: 'killed by SIGSEGV' (a crash in native code), 'killed by SIGKILL' (the OOM
    killer, or someone), or its exit code."""
    process.join(timeout=5)
    code = process.exitcode
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


@dataclass
class _Worker:
    process: Any
    conn: Connection
    item: int | None = None
    deadline: float = 0.0
    ready: bool = False
    started: float = 0.0


@dataclass
class PoolStats:
    timeouts: int = 0
    crashes: int = 0
    restarts: int = 0
    items: int = 0
    seconds: float = 0.0
    extra_workers: int = 0


class VerifierPool:
    def __init__(self, options: dict[str, dict] | None = None, *, workers: int | None = None,
                 timeout_s: float = 10.0, plugins: list[str] | tuple[str, ...] = (), max_workers: int | None = None,
                 straggler_s: float = 0.5):
        self.options = {k: dict(v) for k, v in (options or {}).items()}
        self.timeout_s = timeout_s
        self.plugins = list(plugins)
        self.n_workers = (os.cpu_count() or 1) if workers is None else workers
        self.max_workers = max(self.n_workers, 16) if max_workers is None else max(max_workers, self.n_workers)
        self.straggler_s = straggler_s
        self._ctx = mp.get_context("spawn")  # never fork a process that holds torch threads
        self._workers: list[_Worker] = []
        import_plugins(self.plugins)  # here, in the parent: a broken plug-in is a clear error before any work
        self._inline: dict[str, Any] = {}
        self.stats = PoolStats()
        self._start_failures = 0  # workers that died while starting, in a row
        self.spans: list[tuple[float, float]] = []  # (handed out, answered) per item of the last batch, monotonic s

    def require(self, names: dict[str, str]) -> "VerifierPool":
        """Check that every verifier name the config gives (key -> name) resolves, plug-ins included;
        raises VerifierSetupError naming each key that does not."""
        require(names)
        return self

    # --- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> "VerifierPool":
        """Start the workers and wait until each has imported its verifiers and plug-ins (otherwise the first
        batch starts them). Raises RuntimeError naming the plug-ins when a worker cannot start."""
        while len(self._workers) < self.n_workers:
            self._workers.append(self._spawn())
        for w in self._workers:
            if w.ready:
                continue
            try:
                if not w.conn.poll(STARTUP_S):
                    raise RuntimeError(f"a verifier worker did not start within {STARTUP_S} s "
                                       f"(plug-ins {self.plugins}); check that they import")
                w.ready = w.conn.recv() == "ready"
            except (EOFError, OSError):
                raise RuntimeError(f"a verifier worker died while starting (exit {w.process.exitcode}); "
                                   f"check that the plug-ins {self.plugins} import") from None
        return self

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker_main, args=(child, self.options, self.plugins), daemon=True)
        proc.start()
        child.close()
        return _Worker(proc, parent, started=time.monotonic())

    def _kill(self, w: _Worker) -> None:
        if w.process.is_alive():
            w.process.kill()
        w.process.join(timeout=5)
        w.conn.close()

    def close(self) -> None:
        for w in self._workers:
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for w in self._workers:
            w.process.join(timeout=2)
            self._kill(w)
        self._workers = []

    # --- work -----------------------------------------------------------------------------
    def verify_batch(self, responses: list[str], references: list[Any], names: list[str]) -> list[VerificationResult]:
        start = time.perf_counter()
        items = list(zip(names, responses, references))
        self.stats.items += len(items)
        self.spans = []
        results = self._run_inline(items) if self.n_workers == 0 else self._run(items)
        self.stats.seconds += time.perf_counter() - start
        return results

    def _run_inline(self, items) -> list[VerificationResult]:
        from verifiers.registry import get_verifier

        out = []
        for name, response, reference in items:
            start = time.monotonic()
            try:
                if name not in self._inline:
                    self._inline[name] = get_verifier(name, **self.options.get(name, {}))
                out.append(safe_verify(self._inline[name], response, reference))
            except Exception as exc:
                out.append(VerificationResult(0.0, False, "crash", None, f"{type(exc).__name__}: {exc}"))
            self.spans.append((start, time.monotonic()))
        return out

    def _run(self, items) -> list[VerificationResult]:
        while len(self._workers) < min(self.n_workers, len(items)):
            self._workers.append(self._spawn())
        results: list[VerificationResult | None] = [None] * len(items)
        sent, done = [0.0] * len(items), [0.0] * len(items)
        todo = deque(range(len(items)))
        while todo or any(w.item is not None for w in self._workers):
            for w in self._workers:
                if w.ready and w.item is None and todo:
                    i = todo.popleft()
                    sent[i] = time.monotonic()
                    w.item, w.deadline = i, sent[i] + self.timeout_s
                    try:
                        w.conn.send((i, *items[i]))
                    except (BrokenPipeError, OSError):  # it died while idle (the OOM killer): the item goes back
                        todo.appendleft(i)
                        self._replace(w)
            now = time.monotonic()
            stuck = [w for w in self._workers if w.item is not None and now - (w.deadline - self.timeout_s) > self.straggler_s]
            starting = sum(not w.ready for w in self._workers)
            if todo and len(stuck) == len(self._workers) - starting and starting < len(todo) \
                    and len(self._workers) < self.max_workers:
                self._workers.append(self._spawn())  # every worker is held by a slow item: add one
                self.stats.extra_workers += 1
            watched = [w for w in self._workers if w.item is not None or not w.ready]
            deadlines = [w.deadline if w.ready else w.started + STARTUP_S for w in watched]
            if todo and len(self._workers) < self.max_workers:  # wake up to check for stragglers
                deadlines.append(now + self.straggler_s)
            ready = wait([w.conn for w in watched], timeout=max(0.0, min(deadlines) - time.monotonic()))
            for w in watched:
                if w.conn in ready:
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):  # the worker died (mid-item, or while starting)
                        if not w.ready:
                            self._start_failures += 1  # once may be the OOM killer; every time, a broken plug-in
                            if self._start_failures >= START_ATTEMPTS:
                                raise RuntimeError(f"verifier workers died while starting {START_ATTEMPTS} times in a "
                                                   f"row (last exit {w.process.exitcode}); check that the plug-ins "
                                                   f"{self.plugins} import") from None
                        if w.item is not None:
                            self.stats.crashes += 1
                            results[w.item] = VerificationResult(0.0, False, "crash", None,
                                                                 f"verifier worker died ({_death(w.process)})")
                            done[w.item] = time.monotonic()
                        self._replace(w)
                        continue
                    if msg == "ready":
                        w.ready, self._start_failures = True, 0
                    else:
                        index, result = msg
                        results[index], done[index], w.item = result, time.monotonic(), None
                elif w.item is not None and time.monotonic() >= w.deadline:
                    self.stats.timeouts += 1
                    results[w.item] = VerificationResult(0.0, False, "timeout", None,
                                                         f"verification exceeded {self.timeout_s:g} s; worker killed")
                    done[w.item] = time.monotonic()
                    self._replace(w)
                elif not w.ready and time.monotonic() >= w.started + STARTUP_S:
                    raise RuntimeError(f"a verifier worker did not start within {STARTUP_S} s "
                                       f"(plug-ins {self.plugins}); check that they import")
        self._retire_extras()
        self.spans = list(zip(sent, done))
        return results  # type: ignore[return-value]

    def _retire_extras(self) -> None:
        while len(self._workers) > self.n_workers:
            w = self._workers.pop()
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._kill(w)

    def _replace(self, w: _Worker) -> None:
        self._kill(w)
        self.stats.restarts += 1
        fresh = self._spawn()
        w.process, w.conn, w.item, w.ready, w.started = fresh.process, fresh.conn, None, False, fresh.started
