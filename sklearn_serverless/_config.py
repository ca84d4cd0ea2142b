"""Package-wide settings, as scikit-learn's ``set_config``: a default, and a
context manager for a block of code (per thread)."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_DEFAULTS = {
    # Lost workers a fit replaces per slot before it fails (0: none).
    "max_replacements": 3,
}
_config: contextvars.ContextVar[dict] = contextvars.ContextVar(
    "sklearn_serverless_config", default=_DEFAULTS)


def get_config() -> dict:
    """The current settings (see :func:`set_config`).

    Returns
    -------
    config : dict
        Each setting's name and value, ``{'max_replacements': 3}`` by default.
    """
    return dict(_config.get())


def set_config(*, max_replacements: int | None = None) -> None:
    """Change a setting for the rest of this thread (or context).

    Parameters
    ----------
    max_replacements : int, default=None
        How many times a fit replaces the worker of one slot when its
        function is lost (killed, out of memory, a failed host) before it
        fails naming the cause; 0 turns replacement off. Default 3. None
        keeps the current value.
    """
    config = get_config()
    if max_replacements is not None:
        if int(max_replacements) < 0:
            raise ValueError(f"max_replacements must be >= 0, got {max_replacements}")
        config["max_replacements"] = int(max_replacements)
    _config.set(config)


@contextmanager
def config_context(*, max_replacements: int | None = None) -> Iterator[None]:
    """:func:`set_config` for the block of a ``with`` statement only.

    Parameters
    ----------
    max_replacements : int, default=None
        See :func:`set_config`.

    Yields
    ------
    None
        The settings apply inside the ``with`` block.
    """
    token = _config.set(get_config())
    try:
        set_config(max_replacements=max_replacements)
        yield
    finally:
        _config.reset(token)
