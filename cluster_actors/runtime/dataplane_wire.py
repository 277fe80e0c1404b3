"""The data plane's bytes: frames and the handshake's messages (no IO here).

A frame is a 4-byte big-endian length and that many bytes. The handshake's
messages are frames that start with :data:`MAGIC` and a kind byte:

* challenge (listener first): ``MAGIC C nonce_l[16]``
* hello (dialler): ``MAGIC H nonce_d[16] mac[32] fields``, where ``fields`` is
  the JSON list ``[cluster, src_node, component, src_actor, dst_actor]`` and
  ``mac = HMAC-SHA256(secret, "hello" nonce_l nonce_d fields)``
* welcome (listener): ``MAGIC W HMAC-SHA256(secret, "welcome" nonce_d nonce_l fields)``
* refusal (listener, then it closes): ``MAGIC R reason``
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct

MAGIC = b"CAD1"
LENGTH = struct.Struct(">I")
HANDSHAKE_MAX = 4096  #: bytes; a longer first frame is not a hello
NONCE = 16
REFUSAL_REASONS = ("malformed", "cluster", "bad_hmac", "stale", "component", "timeout")


class FrameTooLarge(ValueError):
    """A frame's announced length is over the reader's limit."""


class FrameReader:
    """Splits a byte stream into frames of at most ``limit`` bytes."""

    __slots__ = ("buffer", "limit", "need")

    def __init__(self, limit: int) -> None:
        self.buffer = bytearray()
        self.limit = limit
        self.need = LENGTH.size  # bytes the buffer must hold before a frame can end

    def feed(self, data: bytes) -> list[bytes]:
        """The frames ``data`` completes, in order; raises :class:`FrameTooLarge`
        (the stream is then unusable) if one announces more than ``limit``."""
        buffer = self.buffer
        buffer += data
        size = len(buffer)
        if size < self.need:
            return []
        frames: list[bytes] = []
        position = 0
        unpack = LENGTH.unpack_from
        with memoryview(buffer) as view:
            while size - position >= 4:
                length = unpack(view, position)[0]
                if length > self.limit:
                    raise FrameTooLarge(f"a frame of {length} bytes; the limit is {self.limit}")
                end = position + 4 + length
                if end > size:
                    self.need = end - position
                    break
                frames.append(bytes(view[position + 4:end]))
                position = end
            else:
                self.need = LENGTH.size
        if position:
            del buffer[:position]
        return frames


def frame(payload: bytes) -> bytes:
    return LENGTH.pack(len(payload)) + payload


def proof(secret: bytes, label: bytes, first: bytes, second: bytes, fields: bytes) -> bytes:
    """HMAC-SHA256 of one handshake step."""
    return hmac.new(secret, label + first + second + fields, hashlib.sha256).digest()


def challenge(nonce: bytes) -> bytes:
    return frame(MAGIC + b"C" + nonce)


def parse_challenge(message: bytes) -> bytes | None:
    """The listener's nonce, or None if ``message`` is no challenge."""
    if len(message) != len(MAGIC) + 1 + NONCE or not message.startswith(MAGIC + b"C"):
        return None
    return message[len(MAGIC) + 1:]


def hello(secret: bytes, listener_nonce: bytes, nonce: bytes, identity: list[str]
          ) -> tuple[bytes, bytes]:
    """``(fields, framed hello)`` for ``identity`` =
    ``[cluster, src_node, component, src_actor, dst_actor]``."""
    fields = json.dumps(identity, separators=(",", ":")).encode()
    mac = proof(secret, b"hello", listener_nonce, nonce, fields)
    return fields, frame(MAGIC + b"H" + nonce + mac + fields)


def parse_hello(message: bytes) -> tuple[bytes, bytes, bytes, list[str]] | None:
    """``(dialler nonce, mac, fields, identity)``, or None if malformed."""
    head = len(MAGIC) + 1
    if not message.startswith(MAGIC + b"H") or len(message) < head + NONCE + 32:
        return None
    nonce = message[head:head + NONCE]
    mac = message[head + NONCE:head + NONCE + 32]
    fields = message[head + NONCE + 32:]
    try:
        identity = json.loads(fields)
    except ValueError:
        return None
    if not (isinstance(identity, list) and len(identity) == 5
            and all(isinstance(item, str) for item in identity)):
        return None
    return nonce, mac, fields, identity


def welcome(secret: bytes, dialler_nonce: bytes, nonce: bytes, fields: bytes) -> bytes:
    return frame(MAGIC + b"W" + proof(secret, b"welcome", dialler_nonce, nonce, fields))


def refusal(reason: str) -> bytes:
    return frame(MAGIC + b"R" + reason.encode())


def parse_reply(message: bytes) -> tuple[str, bytes]:
    """``("welcome", mac)``, ``("refused", reason)`` or ``("malformed", b"")``."""
    if message.startswith(MAGIC + b"W"):
        return "welcome", message[len(MAGIC) + 1:]
    if message.startswith(MAGIC + b"R"):
        return "refused", message[len(MAGIC) + 1:]
    return "malformed", b""
