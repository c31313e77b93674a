"""Independent computations in forked worker processes, one thread each, results in the order given.

Forked workers inherit the parent's imports (not paid again) and its arrays; each computes as a
one-thread job would (`one_thread`), so the numbers do not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

FORKED_JOB = False  # True in a job forked from a warm server (batchlab.jobs.warm): its peak memory counts less


@contextmanager
def one_thread() -> Iterator[None]:
    """Compute as a one-thread job does (BLAS, OpenMP and torch limited to one thread), whatever the workers."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch else None
    with threadpool_limits(1):
        if torch:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch:
                torch.set_num_threads(threads)


def _one_thread_call(fn: Callable[..., Any], args: tuple) -> Any:
    with one_thread():
        return fn(*args)


def imap(fn: Callable[..., Any], calls: Iterable[tuple], workers: int = 1) -> Iterator[Any]:
    """fn(*args) for each args in `calls`, yielded in order as each is ready: in this process when
    workers is 1 (or there is one call), else in up to `workers` forked processes. `fn` must be a
    module-level function."""
    calls = list(calls)
    if workers <= 1 or len(calls) <= 1:
        for args in calls:
            yield _one_thread_call(fn, args)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(workers, len(calls)), mp_context=context) as pool:
        futures = [pool.submit(_one_thread_call, fn, args) for args in calls]
        for future in futures:
            yield future.result()
