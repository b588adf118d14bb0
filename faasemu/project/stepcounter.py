"""A step counter shared by a worker and faasemu's effect sink (docs/verification.md#crash-part-way).

A *step* of a delivery is a commit that changed state, a call to the sink, or an emitted event. The
worker sees its commits and the sink sees the calls, so neither alone can number the steps of one
delivery in order; both increment one counter in a small file mapped into both processes. A handler
runs one step at a time (its sink call blocks until answered), so the two never race.

Layout: one little-endian signed 64-bit integer at offset 0 of an 8-byte file. Standard library only:
workers import it.
"""

from __future__ import annotations

import mmap
import os
import struct

_FORMAT = "<q"
SIZE = struct.calcsize(_FORMAT)


def create(path: str) -> None:
    """Make (or truncate) the counter file at `path`, holding 0; private to the user (0600)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, struct.pack(_FORMAT, 0))
    finally:
        os.close(fd)


class StepCounter:
    """The counter at `path`, mapped; `bump()` adds one and returns the new value."""

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)

    @property
    def value(self) -> int:
        return int(struct.unpack_from(_FORMAT, self._map, 0)[0])

    def reset(self) -> None:
        struct.pack_into(_FORMAT, self._map, 0, 0)

    def bump(self) -> int:
        value = self.value + 1
        struct.pack_into(_FORMAT, self._map, 0, value)
        return value

    def close(self) -> None:
        self._map.close()
