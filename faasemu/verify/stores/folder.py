"""`state.dir` in a campaign: a folder handlers write files into, emptied for every run.

A snapshot is one table `files(path, content)` keyed by path: text when it decodes as UTF-8.
"""

from __future__ import annotations

import os
import shutil

from faasemu.verify.model import Snapshot, Table


def reset(path: str) -> None:
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)


def snapshot(path: str) -> Snapshot:
    rows = []
    for folder, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            with open(full, "rb") as file:
                data = file.read()
            try:
                content: str | bytes = data.decode("utf-8")
            except UnicodeDecodeError:
                content = data
            rows.append((os.path.relpath(full, path), content))
    return Snapshot((Table("files", ("path", "content"), ("path",), tuple(sorted(rows, key=lambda r: r[0]))),))
