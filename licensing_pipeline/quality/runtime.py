"""The Great Expectations runtime of one run (in-process executor) or one step (multiprocess
and Celery executors): a worker process that imports GX and validates and renders for the
run's process, the run's GX session, and its Data Docs, written when the runtime closes.

The data_quality resource opens it in ``setup_for_execution`` and closes it in
``teardown_after_execution``, so the worker and the session end with the run or step that
started them; a worker whose parent is killed ends too.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from licensing_pipeline.quality.batches import Batch
from licensing_pipeline.quality.gx_import import import_gx
from licensing_pipeline.quality.suites import CheckSpec
from licensing_pipeline.quality.validation import (
    CheckOutcome,
    Session,
    Validated,
    Validation,
    evaluate,
    gc_paused,
    render,
    validate,
)

WORKER_NICENESS = 10  # lower priority than the run's own process
PARENT_CHECK_SECONDS = 1.0  # how often the worker looks whether the run's process is alive
PR_SET_PDEATHSIG = 1  # linux/prctl.h

log = logging.getLogger(__name__)


class _RunSessions:
    """The session of the run being validated; another run's results are rendered, and a
    session begun afresh, when it starts."""

    def __init__(self, docs_dir: Path) -> None:
        self.docs_dir = docs_dir
        self.current: Session | None = None

    def validate(self, run_id: str, run_name: str, validation: Validation) -> Validated:
        if self.current is None or self.current.run_id != run_id:
            self.render()
            self.current = Session(self.docs_dir, run_id, run_name)
        return validate(self.current, validation)

    def render(self) -> None:
        if self.current is not None:
            render(self.current)


class GxRuntime:
    """Great Expectations for one run or step: in a worker process when one can be started
    (``start_worker``), so that GX's seconds of importing and rendering run on another core
    while the run goes on; in this process otherwise. ``close`` writes the Data Docs."""

    def __init__(self, docs_dir: Path) -> None:
        self.docs_dir = docs_dir
        self._local = _RunSessions(docs_dir)
        self._worker: ProcessPoolExecutor | None = None

    def start_worker(self) -> None:
        try:
            worker = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(
                    os.getpid(),
                    threading.current_thread() is threading.main_thread(),
                    str(self.docs_dir),
                ),
            )
            worker.submit(_worker_ready)  # the process starts (from this thread), and imports, now
        except Exception as exc:  # no subprocesses here: stay in-process
            log.warning("data quality runs in-process: no GX worker (%s)", exc)
            return
        self._worker = worker

    def evaluate(
        self,
        checks: Sequence[CheckSpec],
        batches: Mapping[str, Callable[[], Batch]],
        parameters: Mapping[str, Any],
        *,
        run_id: str,
        run_name: str,
    ) -> list[CheckOutcome]:
        """``validation.evaluate`` here or in the worker; the worker then renders the pages
        while the run goes on."""

        def submit(validation: Validation) -> Callable[[], Validated]:
            return self._submit(run_id, run_name, validation)

        outcomes = evaluate(checks, batches, parameters, docs_dir=self.docs_dir, submit=submit)
        self._render(wait=False)
        return outcomes

    def close(self) -> None:
        """Write every Data Docs page not written yet and end the worker."""
        self._render(wait=True)
        self._local.render()  # what was validated here after the worker failed
        if self._worker is not None:
            self._worker.shutdown()
            self._worker = None

    def _submit(
        self, run_id: str, run_name: str, validation: Validation
    ) -> Callable[[], Validated]:
        if self._worker is not None:
            try:
                future = self._worker.submit(_worker_validate, run_id, run_name, validation)
            except Exception as exc:  # a broken worker: validate here instead
                self._worker_failed(exc)
            else:

                def wait() -> Validated:
                    try:
                        return future.result()
                    except BrokenExecutor as exc:
                        self._worker_failed(exc)
                        return self._local.validate(run_id, run_name, validation)

                return wait
        local = self._local.validate(run_id, run_name, validation)
        return lambda: local

    def _render(self, *, wait: bool) -> None:
        """Render what was validated so far: in the worker (``wait``: until the pages are
        written), or here when there is no worker and ``wait``."""
        if self._worker is not None:
            try:
                future = self._worker.submit(_worker_render)
                if wait:
                    future.result()
            except Exception as exc:
                self._worker_failed(exc)
            else:
                return
        if wait:
            self._local.render()

    def _worker_failed(self, exc: BaseException) -> None:
        log.warning("the GX worker failed (%s); validating in-process", exc)
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)
            self._worker = None


# --- in the worker process ------------------------------------------------------------------

# The worker's own session: set by its initializer, it lives as long as that process.
_WORKER_SESSIONS: _RunSessions | None = None


def _worker_init(parent: int, spawned_by_main_thread: bool, docs_dir: str) -> None:
    global _WORKER_SESSIONS
    _exit_with_parent(parent, spawned_by_main_thread)
    # Background work: the run's own steps (the event load above all) keep the cores first;
    # the worker takes what they leave, and all of it while a step waits for a validation.
    if hasattr(os, "nice"):
        os.nice(WORKER_NICENESS)
    _WORKER_SESSIONS = _RunSessions(Path(docs_dir))
    import_gx()


def _exit_with_parent(parent: int, spawned_by_main_thread: bool) -> None:
    """End this worker when the run's process dies: a killed run (``kill -9``) cannot shut
    the pool down, and the worker would wait on its task queue for good, keeping its memory
    and multiprocessing's resource tracker (which ends once the worker has gone).

    Linux signals the death of the spawning *thread*, so the signal is asked for only when
    that thread is the main one; a watchdog on the parent's pid covers the rest."""
    if spawned_by_main_thread and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # no prctl: the watchdog alone
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    def watch() -> None:
        while os.getppid() == parent:  # false at once if it died before the prctl above
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_ready() -> bool:
    return True


def _worker_sessions() -> _RunSessions:
    if _WORKER_SESSIONS is None:
        raise RuntimeError("not in a GX worker process")
    return _WORKER_SESSIONS


def _worker_validate(run_id: str, run_name: str, validation: Validation) -> Validated:
    with gc_paused():
        return _worker_sessions().validate(run_id, run_name, validation)


def _worker_render() -> None:
    _worker_sessions().render()
