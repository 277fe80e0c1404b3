"""Where the data plane's sockets live, and how they are set up.

Unix sockets go in a per-cluster directory ``cluster_actors-<uid>/<cluster>/``
under ``$XDG_RUNTIME_DIR`` (else the system temp directory), each directory
mode 0700 and owned by this user, so another user's process cannot even
connect; names too long for the AF_UNIX limit are hashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import socket
import stat
import tempfile
from pathlib import Path

from ..errors import ClusterError

UNIX_PATH_LIMIT = 100  #: bytes; AF_UNIX allows 107 on Linux, 103 on macOS


class DataPlaneError(ClusterError):
    """The data plane cannot start (an unsafe socket directory, for instance)."""

    code = "data_plane"


def machine_id() -> str:
    """This host's identity: its hostname and boot id (Linux)."""
    boot = ""
    with contextlib.suppress(OSError):
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return f"{socket.gethostname()}/{boot}"


# ------------------------------------------------------------ the socket path
def _part(name: str) -> str:
    """``name`` as a path component: itself if short and plain, else hashed."""
    if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,31}", name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    plain = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:12]
    return f"{plain}-{digest}" if plain else digest


def private_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700, or tighten it to 0700 if this user
    owns it; refuse a symlink, a non-directory or another user's directory."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) \
            or info.st_uid != os.getuid():
        raise DataPlaneError(f"{path} is not a directory owned by this user: remove it, or "
                             "set XDG_RUNTIME_DIR to a private directory")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def socket_path(cluster: str, node: str, base: str | None = None) -> Path | None:
    """A fresh socket path in the cluster's private directory
    ``<base>/cluster_actors-<uid>/<cluster>/``, within the AF_UNIX limit
    (long names are hashed). ``base`` defaults to ``$XDG_RUNTIME_DIR``, else
    the system temp directory. None if no path fits. Creates the directories."""
    name = f"{_part(node)}-{os.getpid()}-{secrets.token_hex(3)}.sock"
    bases = [base] if base else [os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(),
                                 "/tmp"]
    for root in filter(None, bases):
        for cluster_part, file in ((_part(cluster), name),
                                   (hashlib.sha256(cluster.encode()).hexdigest()[:12],
                                    f"{os.getpid()}-{secrets.token_hex(3)}.sock")):
            top = Path(root) / f"cluster_actors-{os.getuid()}"
            path = top / cluster_part / file
            if len(os.fsencode(path)) <= UNIX_PATH_LIMIT and os.path.isdir(root):
                private_dir(top)
                private_dir(top / cluster_part)
                return path
    return None


def nodelay(transport: asyncio.BaseTransport) -> None:
    """Send small frames at once (TCP_NODELAY) on a TCP transport."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
