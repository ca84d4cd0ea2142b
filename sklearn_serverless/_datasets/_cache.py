"""Rows a worker keeps for the next run of its process: a pipeline's steps
on one dataset read its objects once.

A pool worker (:mod:`.._worker._pool`) serves run after run in one process;
the steps of a pipeline fitted on a dataset are such runs, each reading the
same byte ranges of the same objects. What a worker parsed (the format's
arrays, before the fitted steps of the run are applied) is kept here, keyed
by the read itself: the objects' versions (ETag; a local file's inode, size
and times), byte ranges or row groups, columns and options. A changed object
has another version, so its rows are read again; an object whose storage
gives no version is never kept.

Memory: at most ``budget`` bytes of arrays, the least recently used dropped
first; a read larger than the budget is not kept. A run gets its own copy of
kept arrays (steps and algorithms may write into their rows). Outside a pool
the budget is 0: a one-off call's process ends with its run. numpy only.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

import numpy as np

_kept: OrderedDict = OrderedDict()
_budget = [0]


def keep_rows(budget: int) -> None:
    """Let this process keep up to ``budget`` bytes of rows (0: none)."""
    _budget[0] = max(0, int(budget))
    _evict()


def kept_bytes() -> int:
    """Bytes of rows kept now."""
    return sum(size for _, size in _kept.values())


def budget_for(fraction: float, share: int) -> int:
    """``fraction`` of this process's memory: the function's memory (AWS
    Lambda's setting, else the container's cgroup limit, else the
    machine's), divided among the ``share`` workers that run on it."""
    if fraction <= 0:
        return 0
    limits = [_physical_memory()]
    lambda_mib = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    if lambda_mib.isdigit():
        limits.append(int(lambda_mib) << 20)
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as file:
                text = file.read().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    return int(fraction * min(limits) / max(1, share))


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 30


def _key(spec):
    """What identifies a read's arrays: the spec without what is applied
    after reading (a view's rows, steps, NaN policy, consumer) or says where
    it stands in a plan (its place, its first row and row count: a view's
    count is of its own rows); None when an object's version is unknown.
    The folds of a search read the same parts: they share what is kept."""
    if not spec.versions or not all(spec.versions):
        return None
    key = replace(spec, index=0, selection=None, steps=(), allow_nan=False, consumer="",
                  row_offset=None, n_rows=None)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _arrays(rows: dict):
    for name, value in rows.items():
        if isinstance(value, np.ndarray):
            yield value
        elif name == "text":
            yield from value.values()


def _copied(rows: dict) -> dict:
    out = {}
    for name, value in rows.items():
        if isinstance(value, np.ndarray):
            out[name] = value.copy()
        elif name == "text":
            out[name] = {j: column.copy() for j, column in value.items()}
        else:
            out[name] = value
    return out


def _evict() -> None:
    total = kept_bytes()
    while _kept and total > _budget[0]:
        _, (_, size) = _kept.popitem(last=False)
        total -= size


def read_through(spec, read: Callable[[], dict], copy: bool = True) -> tuple[dict, bool]:
    """``(rows, hit)``: a copy of the kept rows of this read, or ``read()``
    (kept for the next run when the budget allows). ``copy=False``: the kept
    arrays themselves, read-only, for a caller that only derives new arrays
    from them (a view's rows)."""
    key = _key(spec) if _budget[0] > 0 else None
    if key is not None and key in _kept:
        _kept.move_to_end(key)
        kept = _kept[key][0]
        return (_copied(kept) if copy else dict(kept)), True
    rows = read()
    if key is not None:
        size = sum(array.nbytes for array in _arrays(rows))
        if size <= _budget[0]:
            kept = _copied(rows)
            for array in _arrays(kept):
                array.flags.writeable = False
            _kept[key] = (kept, size)
            _evict()
    return rows, False
