"""Testing tools that are part of the public API: the deterministic simulator,
the Raft invariants and the linearizability checker."""
