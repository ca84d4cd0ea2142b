"""What the calls of a map without rounds run (see :mod:`.._driver._apply`):
a fitted model applied to a dataset's rows where they lie, and the driver's
reads of a dataset (its row count, its labels)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .._common._metering import count_storage, since, snapshot
from ._partitions import Partition, read_partition


@dataclass(frozen=True)
class ApplyTask:
    """What one call computes: ``output(rows, arrays)`` on its rows."""

    output: Callable[[dict, dict], dict]
    arrays: dict
    partition: Partition


def apply_model(task: ApplyTask, storage=None) -> dict:
    """Entry point of a Lithops call applying a model (``storage`` is
    injected by Lithops). No shared state: one map, no rounds. Its storage
    requests travel with the result (``'requests'``), and what the read
    fetched (``'reads'``: ``'bytes_fetched'``, ``'cache_hits'``)."""
    count_storage(storage)
    before = snapshot()
    rows = read_partition(task.partition, storage)
    return {"n_rows": rows["X"].shape[0], **task.output(rows, task.arrays),
            "requests": since(before), "reads": _reads(rows)}


def _reads(rows: dict) -> dict:
    return {name: int(rows.get(name) or 0) for name in ("bytes_fetched", "cache_hits")}


@dataclass(frozen=True)
class SlotTask:
    """What one slot of a pool runs for a map without rounds:
    ``function(task)``, or nothing (``task`` None: a slot whose rows the
    run does not need, see :func:`.._driver._apply.run_calls`)."""

    function: Callable
    task: object = None


def run_slot(slot: SlotTask, storage=None) -> dict | None:
    """Entry point of a pool slot's part of a map without rounds."""
    return None if slot.task is None else slot.function(slot.task, storage)


@dataclass(frozen=True)
class ReadTask:
    """What one call of the driver's reads returns: ``'count'`` (its rows)
    or ``'labels'`` (its label column)."""

    what: str
    partition: Partition


def read_task(task: ReadTask, storage=None) -> dict:
    """Entry point of a Lithops call of the driver's reads of a dataset
    (its storage requests travel with the result, as :func:`apply_model`'s)."""
    from .._datasets._read import count_rows, read_labels

    count_storage(storage)
    before = snapshot()
    reader = count_rows if task.what == "count" else read_labels
    return {**reader(task.partition.spec, storage), "requests": since(before)}
