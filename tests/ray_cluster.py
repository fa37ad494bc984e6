"""One loopback Ray cluster per test session (``ray_cluster``), for the executor's and the loop's tests.

Every Ray process listens on 127.0.0.1 only (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: without it
Ray binds all interfaces), without token authentication (loopback only) and without usage
stats. The head has 2 CPUs and 2 fake GPUs (tasks with ``num_gpus=1`` see
``CUDA_VISIBLE_DEVICES`` 0 and 1); a test adds worker nodes and removes them to play a node dying.
Ray is imported only when a test asks for the cluster.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import pytest

LOOPBACK_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
}
HEAD_CPUS = 2
HEAD_GPUS = 2


class RayTestCluster:
    """The session's cluster: ``address``, the head's ``head_node_id``, nodes to add and remove."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.address: str = cluster.address
        self.head_node_id: str = cluster.head_node.node_id

    def add_node(self, **kwargs: Any) -> Any:
        """A worker node on 127.0.0.1 (``num_cpus``, ``num_gpus``, ``resources``), once it has joined."""
        node = self.cluster.add_node(node_ip_address="127.0.0.1", **kwargs)
        self.cluster.wait_for_nodes()
        return node

    def remove_node(self, node: Any) -> None:
        """Kill the node's raylet and workers: its tasks die with it."""
        self.cluster.remove_node(node)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayTestCluster]:
    saved = {name: os.environ.get(name) for name in LOOPBACK_ENV}
    # Before Ray is imported (it reads some at import) and its first process starts (each inherits them).
    os.environ.update(LOOPBACK_ENV)
    if os.environ.get("CI"):  # CI must run the Ray tests: a missing Ray fails them, never skips
        import ray
    else:
        ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": HEAD_CPUS, "num_gpus": HEAD_GPUS, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        yield RayTestCluster(cluster)
    finally:
        ray.shutdown()
        cluster.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
