"""Progress bars on stderr with rates and ETA (tqdm), quiet when ``VR_NO_PROGRESS=1``.

Long steps run under launchers whose logs are files, not terminals: the bar is still printed there, but
at most every 30 s so logs stay readable.
"""

from __future__ import annotations

import os
import sys


def bar(total: int, desc: str, unit: str = "seq", initial: int = 0):
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=tty,
        mininterval=0.5 if tty else 30.0,
        smoothing=0.1,
        disable=os.environ.get("VR_NO_PROGRESS") == "1",
    )
