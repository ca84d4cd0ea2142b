"""Wake-ups between processes through a 32-bit word of a shared mapping.

A waiter reads the word, checks the state it waits for, and sleeps while the
word still holds what it read (``futex(FUTEX_WAIT)``); a writer changes the
state, bumps the word and wakes every sleeper (``FUTEX_WAKE``). A bump that
lands between the check and the sleep makes the sleep return at once, so no
wake-up is lost. Where the futex call is not available (not Linux on
x86-64 or arm64) :func:`wait` sleeps for a short back-off instead: the
waiter re-checks the state after every wait either way.
"""

from __future__ import annotations

import ctypes
import platform
import sys
import time

_SYSCALL = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}
_FUTEX_WAIT, _FUTEX_WAKE = 0, 1
_ALL = 2**31 - 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _syscall():
    number = _SYSCALL.get(platform.machine().lower()) if sys.platform == "linux" else None
    if number is None:
        return None, None
    try:
        call = ctypes.CDLL(None, use_errno=True).syscall  # releases the GIL while it sleeps
    except (OSError, AttributeError):
        return None, None
    call.restype = ctypes.c_long
    return call, number


_CALL, _NUMBER = _syscall()
#: Whether waits sleep in the kernel until woken (else they poll).
AVAILABLE = _CALL is not None


def address_of(mapping) -> int:
    """The address of the first byte of ``mapping`` (a writable mmap)."""
    view = ctypes.c_char.from_buffer(mapping)
    address = ctypes.addressof(view)
    del view  # no export left: the mapping can be closed
    return address


def wait(address: int, seen: int, seconds: float) -> None:
    """Sleep until the word at ``address`` is woken or no longer ``seen``,
    at most ``seconds``."""
    if _CALL is None:
        time.sleep(min(seconds, 1e-3))
        return
    whole = int(seconds)
    timeout = _Timespec(whole, int((seconds - whole) * 1e9))
    _CALL(_NUMBER, ctypes.c_void_p(address), _FUTEX_WAIT, ctypes.c_int(seen),
          ctypes.byref(timeout), None, 0)


def wake(address: int) -> None:
    """Wake every process sleeping on the word at ``address``."""
    if _CALL is not None:
        _CALL(_NUMBER, ctypes.c_void_p(address), _FUTEX_WAKE, ctypes.c_int(_ALL), None, None, 0)
