"""Run an engine job on Dask distributed: partitions as tasks, the date-wise passes as tasks per date bucket.

Why Dask and not Ray: the job is a few hundred coarse, independent Python tasks per phase over files on a shared
file system, with a barrier between phases; Dask distributed does exactly that with ``Client.submit`` and
``gather``, starts a local cluster from the same Python environment without a separate runtime, and already owns
retries (``retries=``), spilling and the loss of a worker (its tasks are recomputed elsewhere). Ray's object store
and actors buy nothing for this shape and bring a much larger install. Only the tasks of ``job.py`` run remotely;
there is no scheduler of ours. Each task writes its file under a temporary name and renames it, so a retried or
duplicated task leaves one complete file, and the output is committed (manifest, rename) only after every task
of the last phase has returned.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from rdbridge.engine.job import Progress


class DaskExecutor:
    """``Executor`` over a Dask scheduler at ``address`` or a local cluster of ``workers`` processes."""

    def __init__(self, address: str | None = None, workers: int | None = None, memory_limit: int | None = None,
                 progress: Progress | None = None, retries: int = 2) -> None:
        try:
            import distributed  # noqa: F401
        except ImportError as exc:
            raise ImportError("--cluster/--workers need Dask distributed: pip install 'rdbridge[cluster]'") from exc
        self.address = address
        self.workers = workers or 1
        self.memory_limit = memory_limit
        self.progress = progress
        self.retries = retries
        self.client: Any = None
        self.cluster: Any = None
        self.name = "dask"

    def __enter__(self) -> DaskExecutor:
        from distributed import Client, LocalCluster

        if self.address:
            self.client = Client(self.address)
        else:
            import dask

            # our tasks hold no Dask data (they read and write files), so pausing a worker or spilling frees
            # nothing; the partitions are sized to ~65% of a worker's share, and the nanny still restarts a worker
            # past 98% of it (its tasks rerun elsewhere)
            with dask.config.set({"distributed.worker.memory.pause": False,
                                  "distributed.worker.memory.terminate": 0.98}):
                self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                            memory_limit=self._local_limit(), dashboard_address=None)
            self.client = Client(self.cluster)
        self.name = f"dask:{self.client.scheduler.address}"
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    @property
    def memory_per_task(self) -> int | None:
        """Each worker runs one task at a time within its share of the limit (a remote cluster: its own)."""
        if self.address:
            limits = [w.get("memory_limit") or 0 for w in self.client.scheduler_info()["workers"].values()]
            return min(limits) if limits and min(limits) > 0 else None
        return self._local_limit()

    def _local_limit(self) -> int:
        from rdbridge.engine.job import DEFAULT_MEMORY_FRACTION, total_memory

        return int((self.memory_limit or total_memory() * DEFAULT_MEMORY_FRACTION) / self.workers)

    @property
    def min_partitions(self) -> int:
        """Two tasks per worker thread, so a slow or lost worker does not hold the phase alone."""
        return 2 * max(1, sum(self.client.nthreads().values()))

    def map(self, fn: Callable[..., Any], calls: list[tuple], label: str) -> list[Any]:
        from distributed import as_completed

        futures = [self.client.submit(fn, *args, pure=False, retries=self.retries) for args in calls]
        for i, _ in enumerate(as_completed(futures)):
            if self.progress:
                self.progress(label, i + 1, len(futures))
        return self.client.gather(futures)
