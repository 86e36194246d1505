"""dgfpga.backends.cluster: the one Dask client of `simulate` and `explore`."""
from __future__ import annotations

import os

import pytest

from dgfpga.backends.cluster import dask_client
from dgfpga.errors import DgfpgaError

pytest.importorskip("dask.distributed", reason="needs dask[distributed] (extra 'sim')")


def _pid(x):
    return os.getpid(), x * x


def test_local_cluster_runs_in_worker_processes_and_closes():
    with dask_client(2) as client:
        out = client.gather(client.map(_pid, range(6), pure=False))
        workers = client.scheduler_info()["workers"]
    assert [v for _, v in out] == [i * i for i in range(6)]
    assert os.getpid() not in {p for p, _ in out} and len(workers) == 2
    assert client.status == "closed"


def test_unreachable_scheduler_is_a_clear_error():
    class MyError(DgfpgaError):
        pass
    with pytest.raises(MyError, match=r"--scheduler tcp://127.0.0.1:9: cannot connect.*dask scheduler"):
        with dask_client(1, "tcp://127.0.0.1:9", MyError, connect_timeout="1s"):
            pass
