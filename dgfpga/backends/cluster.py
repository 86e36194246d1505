"""Dask distributed for the commands that fan work out over processes or machines
(`dgfpga simulate --jobs/--scheduler`, `dgfpga explore --jobs/--scheduler`): one place that
opens the client, on a LocalCluster of single-threaded worker processes or on a running
scheduler, and closes both. numpy-free and torch-free; Dask is imported only when used.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator, Optional

from dgfpga.errors import DgfpgaError

__all__ = ["dask_client"]


@contextlib.contextmanager
def dask_client(jobs: int, scheduler: Optional[str] = None,
                error: type = DgfpgaError, connect_timeout: str = "30s") -> Iterator:
    """A `dask.distributed.Client`: on the scheduler at `scheduler` (host:port), else on a
    LocalCluster of `jobs` single-threaded worker processes (no dashboard, quiet logs).
    Missing Dask or an unreachable scheduler raise `error` with what to do."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise error(f"--jobs/--scheduler need Dask distributed ({exc}): pip install "
                    f"'dask[distributed]', or run with --jobs 1") from None
    cluster = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout=connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise error(f"--scheduler {scheduler}: cannot connect ({exc}); start one with "
                            f"`dask scheduler` or drop --scheduler") from None
        else:
            cluster = LocalCluster(n_workers=max(1, int(jobs)), threads_per_worker=1,
                                   processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR)
            client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()
