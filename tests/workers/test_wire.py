"""The worker wire (faasemu/workers/wire.py): frames over a real socketpair, both readers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from faasemu.workers import wire


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    try:
        yield left, right
    finally:
        left.close()
        right.close()


def test_frames_round_trip_through_the_workers_blocking_reader(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    big = bytes(range(256)) * 8192  # 2 MB: raw bytes, no escaping
    frames = [({"op": "event", "id": 1, "nested": {"a": [1, 2.5, None, True]}}, b""),
              ({"op": "http"}, big), ({}, b"body only")]
    sender = threading.Thread(target=lambda: [wire.write_frame(left, h, b) for h, b in frames])
    sender.start()
    stream = right.makefile("rb")
    got = [wire.read_frame_from(stream) for _ in frames]
    sender.join()
    assert got == frames


def test_the_incremental_reader_accepts_frames_split_anywhere() -> None:
    data = wire.encode({"op": "a"}, b"xyz") + wire.encode({"op": "b", "n": 2}) + wire.encode({"op": "c"}, b"1")
    for cut in range(len(data) + 1):
        reader = wire.FrameReader()
        frames = reader.feed(data[:cut]) + reader.feed(data[cut:])
        assert frames == [({"op": "a"}, b"xyz"), ({"op": "b", "n": 2}, b""), ({"op": "c"}, b"1")]
    reader = wire.FrameReader()
    assert [f for byte in data for f in reader.feed(bytes([byte]))] == frames  # one byte at a time


def test_the_prefix_gives_header_and_body_lengths() -> None:
    frame = wire.encode({"op": "x"}, b"12345")
    head_len, body_len = wire.PREFIX.unpack_from(frame)
    assert body_len == 5 and len(frame) == wire.PREFIX.size + head_len + body_len and frame.endswith(b"12345")


def test_a_closed_peer_is_eof_before_a_frame_and_inside_one(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.close()
    with pytest.raises(EOFError):
        wire.read_frame_from(right.makefile("rb"))
    a, b = socket.socketpair()
    try:
        a.sendall(wire.encode({"op": "cut"}, b"0123456789")[:-3])  # the peer dies part-way through a frame
        a.close()
        with pytest.raises(EOFError):
            wire.read_frame_from(b.makefile("rb"))
    finally:
        b.close()
