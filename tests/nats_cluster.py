"""Test support: a three-node NATS JetStream cluster on loopback ports, started per test module.

The harness itself lives in ``controlcenter.bench.nats_cluster`` (``controlcenter bench scaleout
--cluster`` starts the same cluster); this module gives the tests their entry points and a few
JetStream look-ups the cluster tests share.
"""

from __future__ import annotations

from controlcenter.bench.nats_cluster import (
    NatsCluster,
    NatsClusterError,
    NatsNode,
    nats_cluster,
    nats_server_binary,
)

__all__ = ["NatsCluster", "NatsClusterError", "NatsNode", "nats_cluster", "nats_server_binary"]
