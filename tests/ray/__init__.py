"""Integration tests on a real local Ray.

Where a module's subject is not how the components live and die as separate
processes, its cluster uses ``LIGHT`` options: the ``per_node`` placement,
one process per logical node, which starts a 3-node cluster in about 5 s on
2 cores instead of about 18 s. The default ``per_component`` placement, each
component its own supervised actor, is exercised by the cluster, supervisor,
coordinator/monitor, heartbeat/membership, sync, telemetry, chaos, failover,
restart, storage-fault, placement, data-plane and command-line tests and by
the notebooks.
"""

#: options that make a module's cluster cheap to start (see above)
LIGHT: dict[str, str] = {"placement": "per_node"}

#: a ``ray.cluster_utils.Cluster`` head's ``_system_config``: Ray declares a
#: removed node dead in about 2 s instead of about half a minute
HEALTH_CHECKS: dict[str, int] = {
    "health_check_initial_delay_ms": 1000, "health_check_period_ms": 500,
    "health_check_timeout_ms": 500, "health_check_failure_threshold": 4}
