"""How a pool's owner talks to its workers: FIFOs on localhost, storage
objects and Redis lists elsewhere. Both ends live here; the owner end runs
on the driver, the worker end inside the pooled functions."""

from __future__ import annotations

from collections.abc import Callable

from ._base import OwnerChannel


def open_channel(kind: str, **options) -> OwnerChannel:
    """A new owner channel of ``kind`` (``'fifo'`` or ``'cloud'``)."""
    return CHANNELS[kind]()(**options)


def _fifo() -> type[OwnerChannel]:
    from ._fifo import FifoChannel

    return FifoChannel


def _cloud() -> type[OwnerChannel]:
    from ._cloud import CloudChannel

    return CloudChannel


#: Channel kinds, each imported when first used.
CHANNELS: dict[str, Callable[[], type[OwnerChannel]]] = {"fifo": _fifo, "cloud": _cloud}
