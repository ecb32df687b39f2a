"""Reading `vr-tools pipeline --dry-run` output in tests: the command lines printed under one stage."""

from __future__ import annotations


def stage_lines(stdout: str, stage: str) -> list[str]:
    """The non-comment lines after ``# stage <stage> ...`` and before the next stage header."""
    lines, inside = [], False
    for line in stdout.splitlines():
        if line.startswith("# stage "):
            inside = line.startswith(f"# stage {stage} ")
        elif inside and line and not line.startswith("#"):
            lines.append(line)
    return lines
