"""Whether a process of this machine still runs: the one test every
"owner gone" check of the package uses (fit folders, Redis keys of a killed
driver, lost workers, the warm server's sockets)."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """The process exists and is not a zombie (a killed child that its
    parent has not reaped yet is gone for every purpose here)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
