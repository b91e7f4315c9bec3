"""Scenario 7: the cross-host cost per request. The same streaming load through the gateway on the head to an
engine replica on a worker host (two hosts made of Linux namespaces, as the cluster tests make them: root
needed), against the platform on one host. Both share this machine's cores, so what differs is the path a
request takes: Ray's hops between two nodes over the bridge instead of within one."""

from __future__ import annotations

import functools
from pathlib import Path

from bench.measure import Row, alternate, measure
from bench.servers import MODEL_ID, platform
from tests.cluster.hosts import Network
from tests.cluster.platform import Cluster, make_secrets, stores

SCENARIO = "cross-host"
LEVELS = {1: 8, 8: 32}


def run(work: Path, *, rounds: int, levels: dict[int, int] = LEVELS) -> list[Row]:
    rows: list[Row] = []

    def one_host(round_no: int) -> None:
        with platform(8400, work, name="platform-one-host") as server:
            rows.extend(measure(SCENARIO, "one-host", server.url, MODEL_ID, levels, round_no=round_no))

    def cross_host(round_no: int) -> None:
        root = work / f"cross-host-{round_no}"
        with Network() as network, stores(network):
            # The head offers one CPU and the engine asks for two: it can only go to the worker, which joins
            # while the head converts its model.
            cluster = Cluster(network, root, make_secrets(root / "secrets"), NODE_CPUS="1", ENGINE_CPUS="2")
            worker = cluster.add_worker("worker-1")
            cluster.start_head()
            engines = [name for name in worker.process_names() if "llm-platform:engine" in name]
            if not engines:
                raise RuntimeError("the engine replica is not on the worker host")
            rows.extend(measure(SCENARIO, "cross-host", cluster.url, MODEL_ID, levels, round_no=round_no))
            cluster.stop_head()

    alternate([functools.partial(one_host), functools.partial(cross_host)], rounds)
    return rows
