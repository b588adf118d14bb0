"""Length-prefixed frames between the supervisor and its workers.

A frame is `>II` (header length, body length), a header, then raw body bytes, so a 6 MB request
body crosses the boundary without base64 or escaping. The header is `marshal`-encoded: both ends
are the same interpreter (the supervisor starts workers with its own `sys.executable`) talking
over a private socketpair, and marshal is several times faster than JSON on the invoke path.
Standard library only: both sides of the process boundary use it.
"""

from __future__ import annotations

import marshal
import socket
import struct
from typing import Any, BinaryIO

PREFIX = struct.Struct(">II")
Frame = tuple[dict[str, Any], bytes]

_dumps = marshal.dumps
_loads = marshal.loads


def encode(header: dict[str, Any], body: bytes = b"") -> bytes:
    head = _dumps(header)
    return PREFIX.pack(len(head), len(body)) + head + body


class FrameReader:
    """Incremental parser for a byte stream of frames (the supervisor's asyncio side)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        while len(buffer) >= PREFIX.size:
            head_len, body_len = PREFIX.unpack_from(buffer)
            end = PREFIX.size + head_len + body_len
            if len(buffer) < end:
                break
            header = _loads(bytes(buffer[PREFIX.size : PREFIX.size + head_len]))
            body = bytes(buffer[PREFIX.size + head_len : end])
            del buffer[:end]
            frames.append((header, body))
        return frames


def read_frame_from(stream: BinaryIO) -> Frame:
    """Blocking read of one frame from a buffered stream (the worker's side: the socket wrapped
    by `makefile`, so a frame costs one recv, not three). Raises EOFError when the peer is gone."""
    prefix = stream.read(PREFIX.size)
    if len(prefix) < PREFIX.size:
        raise EOFError("peer closed the connection")
    head_len, body_len = PREFIX.unpack(prefix)
    data = stream.read(head_len + body_len)
    if len(data) < head_len + body_len:
        raise EOFError("peer closed the connection")
    return (_loads(data[:head_len]) if head_len else {}), data[head_len:]


def write_frame(sock: socket.socket, header: dict[str, Any], body: bytes = b"") -> None:
    sock.sendall(encode(header, body))
