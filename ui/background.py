"""Work the app does in the background for a page, shared by the server's sessions: an import of the user's images,
a classifier trained on request. Each task runs in a worker thread of one process-wide pool (concurrent.futures), so
no session's script waits for it and a page switch or a reload does not stop it; it reports progress into a record
that a page polls from a fragment, and is found again by its key.

Training a model is not one of these: it has its own registry and live view (vae_core.jobs, ui.training).
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Callable

import streamlit as st

log = logging.getLogger(__name__)

POLL_S = 0.5
WORKERS = 2  # an import and a classifier may run at once; each is mostly C code that releases the GIL
KEEP = 32  # finished tasks remembered (their outcome is shown until a session moves on)
RUNNING, FINISHED, FAILED, CANCELLED = "running", "finished", "failed", "cancelled"

Progress = Callable[[int, int, str], None]  # (done, total, message); total 0 while it is not known


class Cancelled(Exception):
    """Raised in the task's thread at its next progress report once it was asked to stop."""


class TaskBusy(RuntimeError):
    """A task under the same key is still running."""


@dataclass(frozen=True)
class TaskView:
    title: str
    state: str = RUNNING
    done: int = 0
    total: int = 0
    message: str = "waiting for a worker"
    result: Any = None  # what the work returned, once finished
    error: str | None = None  # one line for the user, once failed

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def fraction(self) -> float:
        return min(max(self.done / self.total, 0.0), 1.0) if self.total else 0.0


class Task:
    """One piece of work: `work(progress)` runs in a worker thread; `view()` is its state now. Exceptions of the
    `expected` types end it with their message (already one line for the user); any other ends it with its type
    named, and the traceback goes to the log only."""

    def __init__(self, title: str, work: Callable[[Progress], Any], expected: tuple[type[BaseException], ...] = ()):
        self._work, self._expected = work, expected
        self._lock = threading.Lock()
        self._view = TaskView(title)
        self._cancel = threading.Event()

    def view(self) -> TaskView:
        with self._lock:
            return self._view

    @property
    def running(self) -> bool:
        return self.view().running

    def cancel(self) -> None:
        self._cancel.set()

    def _set(self, **fields) -> None:
        with self._lock:
            self._view = replace(self._view, **fields)

    def _progress(self, done: int, total: int, message: str) -> None:
        if self._cancel.is_set():
            raise Cancelled
        self._set(done=int(done), total=int(total), message=str(message))

    def run(self) -> None:
        try:
            self._progress(0, 0, "starting")
            result = self._work(self._progress)
        except Cancelled:
            self._set(state=CANCELLED, message="cancelled")
        except self._expected as exc:
            self._set(state=FAILED, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a worker thread has no one else to tell
            log.exception("background task %r failed", self._view.title)
            first = str(exc).splitlines()[0] if str(exc) else "no detail"
            self._set(state=FAILED, error=f"{self._view.title} failed ({type(exc).__name__}: {first[:200]})")
        else:
            self._set(state=FINISHED, result=result, done=self._view.total or 1, total=self._view.total or 1,
                      message="done")


class Tasks:
    """The server's background tasks by key. A server that shuts down asks its running tasks to stop (each stops at
    its next progress report and leaves nothing half-written) before the pool's threads are joined."""

    def __init__(self, workers: int = WORKERS, keep: int = KEEP) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="vae-task")
        self._tasks: dict[str, Task] = {}
        self._keep = keep
        self._lock = threading.Lock()
        threading._register_atexit(self.cancel_all)  # as vae_core.jobs.JobRegistry: before the pool is joined

    def start(self, key: str, title: str, work: Callable[[Progress], Any],
              expected: tuple[type[BaseException], ...] = ()) -> Task:
        """Run `work` in the background under `key`; TaskBusy while a task of that key is still running."""
        with self._lock:
            if (existing := self._tasks.get(key)) is not None and existing.running:
                raise TaskBusy(f"{existing.view().title} is still under way")
            task = Task(title, work, expected)
            self._tasks.pop(key, None)
            self._tasks[key] = task
            for old in [k for k, t in self._tasks.items() if not t.running][:-self._keep]:
                del self._tasks[old]
        self._pool.submit(task.run)
        return task

    def get(self, key: str) -> Task | None:
        with self._lock:
            return self._tasks.get(key)

    def cancel_all(self) -> None:
        with self._lock:
            tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()


@st.cache_resource
def tasks() -> Tasks:
    """One set of tasks per server process."""
    return Tasks()


def _follow(key: str, polling: bool, cancel_label: str | None) -> None:
    task = tasks().get(key)
    if task is None:
        return
    view = task.view()
    if polling and not view.running:
        st.rerun()  # the whole page: the outcome is shown, and every list the result changes is redrawn
    if not view.running:
        return
    counted = f" ({view.done:,} of {view.total:,})" if view.total else ""
    st.progress(view.fraction, text=f"{view.title}: {view.message}{counted}")
    if cancel_label and st.button(cancel_label, key=f"cancel-{key}"):
        task.cancel()


def follow(key: str, cancel_label: str | None = None) -> None:
    """The progress of the task under `key`, redrawn every POLL_S seconds while it runs (a fragment: the rest of the
    page stays still), with a button that cancels it when `cancel_label` is given; the page is rerun once it ends."""
    task = tasks().get(key)
    running = task is not None and task.running
    st.fragment(_follow, run_every=POLL_S if running else None)(key, running, cancel_label)
