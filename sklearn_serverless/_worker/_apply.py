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
    requests travel with the result (``'requests'``)."""
    count_storage(storage)
    before = snapshot()
    rows = read_partition(task.partition, storage)
    return {"n_rows": rows["X"].shape[0], **task.output(rows, task.arrays),
            "requests": since(before)}


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
