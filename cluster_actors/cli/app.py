"""The ``cluster-actors`` command.

    cluster-actors demo                      # the main job, on a local Ray
    cluster-actors up --address auto         # start the layer on a running Ray cluster
                    [--follow-ray-nodes]     # and turn Ray nodes that join into nodes (stays up)
    cluster-actors status [--name NAME]      # nodes, roles, terms, commit indexes
    cluster-actors down [--name NAME]        # stop every actor of the cluster
    cluster-actors config get [KEY]          # the replicated configuration (or one key)
    cluster-actors config set KEY VALUE      # a new version (VALUE as JSON, else a string)
    cluster-actors config history | rollback VERSION
    cluster-actors kv get KEY | put KEY VALUE | del KEY | list [PREFIX]
    cluster-actors kv watch PREFIX [--key] [--rev N] [--count N]   # changes as they happen
    cluster-actors member list | add NODE | remove NODE
    cluster-actors lock NAME [-- COMMAND ...]   # run COMMAND while holding the lock
    cluster-actors election leader NAME | observe NAME [--count N]
    cluster-actors chaos ...                 # a seeded chaos run with a checked history
    cluster-actors sim ...                   # simulator sweeps of the pure Raft core
    cluster-actors bench [--quick] [--only kv,...]   # benchmarks (needs a source checkout)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..errors import ClusterError

DEFAULT_NAME = "cluster"
#: seconds between the checks of ``up --follow-ray-nodes`` that the cluster still runs
FOLLOW_CHECK_SECONDS = 2.0


def _connect(address: str) -> None:
    """Connect this process to the Ray cluster at ``address`` as a driver.

    Raises ClusterError with what to do when no Ray answers there, or when the
    cluster wants an authentication token this process did not present (Ray
    reads the local token by itself only for ``--address auto``).
    """
    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except ConnectionError as error:
        cause = f"{error!r} {error.__cause__!r}"
        if "InvalidAuthToken" in cause or "AuthenticationError" in cause:
            raise ClusterError(
                f"the Ray cluster at {address!r} requires token authentication: set "
                f"RAY_AUTH_MODE=token and provide the cluster's token in ~/.ray/auth_token, "
                f"RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH") from None
        raise ClusterError(f"no Ray cluster reachable at {address!r}: start one with "
                           f"`ray start --head` or pass its address ({error})") from None


def _address_option(address: str) -> str:
    return "" if address == "auto" else f" --address {address}"


def _status(args: argparse.Namespace) -> int:
    from ..cluster import Cluster
    from .demo import status_table

    _connect(args.address)
    cluster = Cluster.attach(args.name, address=args.address)
    Console().print(status_table(cluster.status(), f"cluster {args.name!r}"))
    return 0


def _up(args: argparse.Namespace) -> int:
    import ray

    from ..cluster import Cluster
    from .demo import status_table

    _connect(args.address)
    ray_nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    count = args.nodes or len(ray_nodes)
    if count < 1:
        raise ClusterError("the Ray cluster has no live node")
    options: dict[str, Any] = {"detached": True, "placement": args.placement}
    if args.data_dir:
        options["data_dir"] = args.data_dir
    if args.follow_ray_nodes:
        options["follow_ray_nodes"] = True
    console = Console()
    with console.status(f"starting {count} logical nodes on {len(ray_nodes)} Ray node(s)"):
        cluster = Cluster.start(args.name, nodes=count, options=options,
                                ray_nodes=ray_nodes if args.pin else None, fresh=args.fresh)
    console.print(status_table(cluster.status(), f"cluster {args.name!r} is up"))
    where = f"--name {args.name}{_address_option(args.address)}"
    console.print(f"inspect with `cluster-actors status {where}`, stop with "
                  f"`cluster-actors down {where}`")
    if args.follow_ray_nodes:
        console.print("following Ray's nodes until the cluster is shut down (Ctrl-C stops "
                      "following; the cluster keeps running)")
        _follow_until_down(args.name)
    return 0


def _follow_until_down(name: str) -> None:
    """Keep this process (and so its ``follow_ray_nodes`` thread) alive until
    cluster ``name`` is shut down or the user interrupts."""
    from ..client.session import registered_cluster

    try:
        while True:
            time.sleep(FOLLOW_CHECK_SECONDS)
            registered_cluster(name)
    except (ClusterError, KeyboardInterrupt):
        return


def _down(args: argparse.Namespace) -> int:
    from ..cluster import Cluster

    _connect(args.address)
    cluster = Cluster.attach(args.name, address=args.address)
    cluster.shutdown()
    Console().print(f"cluster {args.name!r} stopped")
    return 0


def _json_value(text: str) -> object:
    """A command-line value: JSON (``5``, ``null``, ``{"a": 1}``), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _config(args: argparse.Namespace) -> int:
    from ..cluster import Cluster

    _connect(args.address)
    config = Cluster.attach(args.name, address=args.address).config(args.node)
    console = Console()
    if args.action == "get":
        value = config.get_config(args.key) if args.key else config.get_config()
        console.print_json(json.dumps(value))
    elif args.action == "set":
        version = config.set_config(args.key, _json_value(args.value))
        console.print(f"{args.key} set: configuration version {version}")
    elif args.action == "history":
        for record in config.get_history():
            keys = ", ".join(record["changed_keys"]) or "-"
            console.print(f"{record['version']:>5}  {record['kind']:<8}  {keys}")
    else:
        version = config.rollback(args.version)
        console.print(f"rolled back to the content of version {args.version}: "
                      f"configuration version {version}")
    return 0


def _attached(args: argparse.Namespace) -> Any:
    from ..cluster import Cluster

    _connect(args.address)
    return Cluster.attach(args.name, address=args.address)


def _kv(args: argparse.Namespace) -> int:
    """etcdctl's get / put / del, and list (a prefix, in key order)."""
    kv = _attached(args).kv
    console = Console()
    if args.action == "get":
        record = kv.get_kv(args.key)
        if record is None:
            Console(stderr=True).print(f"no key {args.key!r}")
            return 1
        console.print_json(json.dumps(record.value, default=repr))
    elif args.action == "put":
        result = kv.put(args.key, _json_value(args.value))
        console.print(f"OK: {args.key} at revision {result.revision}")
    elif args.action == "del":
        deleted = kv.delete(args.key)
        console.print(f"deleted {args.key}" if deleted else f"no key {args.key!r}")
        return 0 if deleted else 1
    elif args.action == "watch":
        return _watch(kv, args, console)
    else:
        table = Table("key", "value", "version", "mod revision")
        for record in kv.items(args.prefix):
            table.add_row(record.key, json.dumps(record.value, default=repr),
                          str(record.version), str(record.mod_revision))
        console.print(table)
    return 0


def _watch(kv: Any, args: argparse.Namespace, console: Console) -> int:
    """etcdctl watch: one line per change, in revision order, across leader
    changes; from revision ``--rev`` (a compacted one: exit 2), until
    ``--count`` changes or Ctrl-C."""
    seen = 0
    with kv.watch(args.key, start_revision=args.rev, prefix=not args.exact) as watch:
        try:
            for event in watch:
                style = "green" if event.type == "put" else "red"
                value = "" if event.type == "delete" else json.dumps(event.value, default=repr)
                console.print(f"[bold {style}]{event.type.upper():<6}[/] "
                              f"[dim]rev {event.revision:>6}[/]  {event.key}  {value}",
                              highlight=False, markup=True, soft_wrap=True)
                seen += 1
                if args.count and seen >= args.count:
                    break
        except KeyboardInterrupt:
            pass
    return 0


def _member(args: argparse.Namespace) -> int:
    """etcdctl's member list / add / remove: the Raft configuration's members."""
    cluster = _attached(args)
    console = Console()
    if args.action == "add":
        with console.status(f"adding {args.node}: start, catch up as a learner, promote"):
            cluster.add_node(args.node)
        console.print(f"{args.node} added: members {', '.join(cluster.node_ids)}")
    elif args.action == "remove":
        cluster.remove_node(args.node)
        console.print(f"{args.node} removed: members {', '.join(cluster.node_ids)}")
    else:
        status = cluster.status()
        view = next((n for n in status.nodes if n.node_id == status.leader), None)
        table = Table("node", "member", "role", "state", "term", "commit")
        for node in status.nodes:
            member = ("-" if view is None else "voter" if node.node_id in view.voters
                      else "learner" if node.node_id in view.learners else "not a member")
            table.add_row(node.node_id, member, node.role or "unreachable", node.state or "-",
                          str(node.term if node.term is not None else "-"),
                          str(node.commit if node.commit is not None else "-"))
        console.print(table)
    return 0


def _lock(args: argparse.Namespace) -> int:
    """Take lock NAME (waiting for it), run COMMAND while holding it, release."""
    cluster = _attached(args)
    command = [word for word in args.command if word != "--"]
    console = Console()
    with cluster.lock(args.lock, ttl=args.ttl) as lock:
        console.print(f"acquired lock {args.lock!r}: fencing token {lock.token}")
        if not command:
            return 0
        code = subprocess.run(command, check=False,
                              env={**os.environ, "CLUSTER_ACTORS_FENCING_TOKEN":
                                   str(lock.token)}).returncode
    console.print(f"released lock {args.lock!r}")
    return code


def _election(args: argparse.Namespace) -> int:
    """The current leader of election NAME, or its changes as they happen."""
    election = _attached(args).election(args.election)
    console = Console()
    if args.action == "leader":
        info = election.leader()
        if info is None:
            console.print(f"nobody leads {args.election!r}")
            return 1
        console.print(f"{info.candidate_id} leads {args.election!r} (token {info.token}, "
                      f"value {json.dumps(info.value, default=repr)})")
        return 0
    for seen, info in enumerate(election.observe(), start=1):
        console.print("nobody leads" if info is None else
                      f"{info.candidate_id} leads (token {info.token}, "
                      f"value {json.dumps(info.value, default=repr)})")
        if args.count and seen >= args.count:
            break
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.simulated:
        from .sim_demo import main as simulated

        simulated()
        return 0
    from .demo import run

    run(args.nodes, args.writes, keep=not args.shutdown, address=args.address)
    return 0


def _sim(args: argparse.Namespace) -> int:
    from .sim import main

    return main(args.rest)


def _chaos(args: argparse.Namespace) -> int:
    try:
        from .chaos import main
    except ModuleNotFoundError:
        raise ClusterError("the chaos command is not available in this build") from None
    return int(main(args.rest) or 0)


def bench_runner(package_dir: Path | None = None) -> Path:
    """``benchmarks/run.py`` of the source checkout holding the package (its
    parent directory); ClusterError saying so when the package was installed
    without the checkout."""
    if package_dir is None:
        package_dir = Path(__file__).resolve().parents[1]
    runner = package_dir.parent / "benchmarks" / "run.py"
    if not runner.is_file():
        raise ClusterError(f"the benchmarks need a source checkout: {runner} does not exist "
                           f"(this cluster_actors is installed from {package_dir}); clone the "
                           "repository, `pip install -e .` there and run `make bench` or "
                           "`cluster-actors bench` from it")
    return runner


def _bench(args: argparse.Namespace) -> int:
    command = [sys.executable, str(bench_runner())]
    if args.quick:
        command.append("--quick")
    if args.only:
        command += ["--only", args.only]
    if args.repeats:
        command += ["--repeats", str(args.repeats)]
    return subprocess.run(command, check=False).returncode


def _cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default="auto", help="Ray address (default: auto)")
    parser.add_argument("--name", default=DEFAULT_NAME, help="the cluster's name")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cluster-actors", description="OTP-style cluster coordination for Ray.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the demo on a local Ray (the main job)")
    demo.add_argument("--nodes", type=int, default=5)
    demo.add_argument("--writes", type=int, default=2000, help="pipelined writes to time")
    demo.add_argument("--simulated", action="store_true",
                      help="the pure cores in the deterministic simulator, without Ray")
    demo.add_argument("--shutdown", action="store_true",
                      help="stop the cluster at the end (default: it keeps running, named "
                           "'demo', for `status --name demo` and `down --name demo`)")
    demo.add_argument("--address", default=None,
                      help="a running Ray cluster (default: the local head, started if none "
                           "runs)")
    demo.set_defaults(run=_demo)

    up = commands.add_parser("up", help="start the layer on a running Ray cluster, one "
                                        "logical node per Ray node, as detached actors")
    up.add_argument("--address", default="auto", help="Ray address (default: auto)")
    up.add_argument("--name", default=DEFAULT_NAME)
    up.add_argument("--nodes", type=int, default=0, help="logical nodes (default: one per "
                                                         "Ray node)")
    up.add_argument("--no-pin", dest="pin", action="store_false",
                    help="do not pin logical nodes to Ray nodes")
    up.add_argument("--data-dir", default=None,
                    help="where the nodes keep their files (default: $CLUSTER_ACTORS_DATA_DIR, "
                         "else $XDG_DATA_HOME/cluster_actors, else ~/.local/share/cluster_actors)")
    up.add_argument("--placement", choices=["per_component", "per_node"],
                    default="per_component",
                    help="per_component: each component its own supervised actor (default); "
                         "per_node: one process per logical node, for small machines")
    up.add_argument("--fresh", action="store_true",
                    help="delete the data a previous cluster of this name left and start a new "
                         "one (default: resume it with the same members)")
    up.add_argument("--follow-ray-nodes", action="store_true",
                    help="ClusterOptions(follow_ray_nodes=True): a Ray node that joins later "
                         "becomes a logical node, one that leaves is removed; the command "
                         "stays up following until the cluster is shut down")
    up.set_defaults(run=_up)

    for name, run, text in (("status", _status, "show the cluster's nodes"),
                            ("down", _down, "stop every actor of the cluster")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--address", default="auto")
        sub.add_argument("--name", default=DEFAULT_NAME)
        sub.set_defaults(run=run)

    config = commands.add_parser(
        "config", help="read or change the replicated configuration (hot-reloaded)")
    config.add_argument("--address", default="auto")
    config.add_argument("--name", default=DEFAULT_NAME)
    config.add_argument("--node", default=None,
                        help="the node to ask (default: the first); changes reach every node")
    actions = config.add_subparsers(dest="action", required=True)
    get = actions.add_parser("get", help="the whole configuration, or one key "
                                         "(a field or metadata.<path>)")
    get.add_argument("key", nargs="?", default=None)
    put = actions.add_parser("set", help="change one key: validated, then committed "
                                         "through Raft as a new version")
    put.add_argument("key")
    put.add_argument("value", help="JSON (5, null, [\"n1\"], {...}); anything else is a string")
    actions.add_parser("history", help="the kept versions: number, kind, changed keys")
    back = actions.add_parser("rollback", help="restore an old version's content as a "
                                               "new version")
    back.add_argument("version", type=int)
    config.set_defaults(run=_config)

    kv = commands.add_parser("kv", help="the linearizable key-value store (as etcdctl)")
    _cluster_arguments(kv)
    kv_actions = kv.add_subparsers(dest="action", required=True)
    kv_get = kv_actions.add_parser("get", help="a key's value (exit 1 if there is none)")
    kv_get.add_argument("key")
    kv_put = kv_actions.add_parser("put", help="write a key (VALUE as JSON, else a string)")
    kv_put.add_argument("key")
    kv_put.add_argument("value")
    kv_del = kv_actions.add_parser("del", help="delete a key (exit 1 if there was none)")
    kv_del.add_argument("key")
    kv_list = kv_actions.add_parser("list", help="the keys under a prefix, in key order")
    kv_list.add_argument("prefix", nargs="?", default="")
    kv_watch = kv_actions.add_parser(
        "watch", help="print the changes under a prefix as they happen (etcdctl watch)")
    kv_watch.add_argument("key", help="the prefix to follow (with --key: one key)")
    kv_watch.add_argument("--key", dest="exact", action="store_true",
                          help="follow exactly this key, not a prefix")
    kv_watch.add_argument("--rev", type=int, default=None,
                          help="start at this revision (replays the history since)")
    kv_watch.add_argument("--count", type=int, default=0,
                          help="stop after this many changes (default: until Ctrl-C)")
    kv.set_defaults(run=_kv)

    member = commands.add_parser("member", help="list, add or remove members at run time")
    _cluster_arguments(member)
    member_actions = member.add_subparsers(dest="action", required=True)
    member_actions.add_parser("list", help="the nodes with role, state, term and commit")
    for action, text in (("add", "start a node and join it (learner, then voter)"),
                         ("remove", "take a live or dead node out of the voters")):
        member_actions.add_parser(action, help=text).add_argument("node")
    member.set_defaults(run=_member)

    lock = commands.add_parser("lock", help="hold a lock while a command runs (its "
                                            "fencing token in $CLUSTER_ACTORS_FENCING_TOKEN)")
    _cluster_arguments(lock)
    lock.add_argument("--ttl", type=float, default=5.0,
                      help="seconds the lock outlives this process if it dies (default 5)")
    lock.add_argument("lock", metavar="NAME", help="the lock's name")
    lock.add_argument("command", nargs=argparse.REMAINDER,
                      help="the command to run while holding it (after --)")
    lock.set_defaults(run=_lock)

    election = commands.add_parser("election", help="who leads an election, or follow it")
    _cluster_arguments(election)
    election_actions = election.add_subparsers(dest="action", required=True)
    election_actions.add_parser("leader", help="the current leader").add_argument("election")
    observe = election_actions.add_parser("observe", help="print each change of leader")
    observe.add_argument("election")
    observe.add_argument("--count", type=int, default=0,
                         help="stop after this many lines (default: until interrupted)")
    election.set_defaults(run=_election)

    bench = commands.add_parser(
        "bench", help="run the benchmarks against the seed's targets (needs a source "
                      "checkout); writes benchmarks/results/latest.md and .json")
    bench.add_argument("--quick", action="store_true", help="a smoke run of a few minutes")
    bench.add_argument("--only", default=None,
                       help="comma-separated benchmarks: kv, config, elections, sync, "
                            "failover, heartbeats, supervisor, merkle, scale, scaling")
    bench.add_argument("--repeats", type=int, default=None,
                       help="repetitions per figure (default 3, --quick 2)")
    bench.set_defaults(run=_bench)

    for name, run, text in (("chaos", _chaos, "a seeded chaos run (see `chaos --help`)"),
                            ("sim", _sim, "simulator sweeps (see `sim --help`)")):
        sub = commands.add_parser(name, help=text, add_help=False)
        sub.add_argument("rest", nargs=argparse.REMAINDER)
        sub.set_defaults(run=run)
    return parser


# Commands whose arguments belong to another parser: everything after the
# command word is handed over unparsed (argparse's REMAINDER does not capture a
# leading ``--option``, so ``sim --seeds 3`` would otherwise be rejected).
_PASSTHROUGH = {"chaos": _chaos, "sim": _sim}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _PASSTHROUGH:
        args = argparse.Namespace(command=argv[0], rest=argv[1:], run=_PASSTHROUGH[argv[0]])
    else:
        args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ClusterError as error:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {error}")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
