"""Which host processes carry a marker: the sandbox tests check that nothing a program started survives."""

from __future__ import annotations

import os


def processes_with(marker: str, field: str = "cmdline") -> list[int]:
    """PIDs whose ``/proc/<pid>/<field>`` (``cmdline`` or ``environ``) contains ``marker``."""
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/{field}", "rb") as fh:
                    if marker.encode() in fh.read():
                        found.append(int(d))
            except OSError:
                continue
    return found
