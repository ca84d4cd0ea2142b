"""Sending a user's algorithm code with the functions that run it."""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import fields

from .._worker._algorithm import Algorithm

_INSTALLED = tuple(os.path.realpath(sysconfig.get_paths()[key]) + os.sep
                   for key in ("stdlib", "platstdlib", "purelib", "platlib"))


def ship_by_value(algorithm: Algorithm) -> dict[str, str]:
    """Send the code of the algorithm's own modules with it: a module that is
    neither installed nor this package's (a user's script or project) cannot
    be imported by a function in the cloud, nor always by a local worker.
    Returns each such module's file, which the workers give back to the code
    (see :func:`.._worker._loop._restore_filenames`)."""
    import cloudpickle

    sources = {}
    for value in _parts(algorithm):
        module = sys.modules.get(getattr(value, "__module__", None) or "")
        if module is None or module.__name__.split(".")[0] == __name__.split(".")[0]:
            continue
        path = getattr(module, "__file__", None)
        if path is None:
            continue
        if module.__name__ == "__main__":  # it travels by value anyway
            sources["__main__"] = os.path.abspath(path)
            continue
        if os.path.realpath(path).startswith(_INSTALLED):
            continue
        cloudpickle.register_pickle_by_value(module)
        sources[module.__name__] = os.path.abspath(path)
    return sources


def _parts(algorithm: Algorithm):
    for field in fields(algorithm):
        value = getattr(algorithm, field.name)
        values = list(value.values()) if isinstance(value, dict) else [value]
        for item in values:
            if item is None or isinstance(item, (str, bool)):
                continue
            yield item
            if not isinstance(item, type) and not callable(getattr(item, "__module__", None)):
                yield type(item)
