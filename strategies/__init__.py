"""Plug-in failover, partition and sync strategies for cluster_actors."""
