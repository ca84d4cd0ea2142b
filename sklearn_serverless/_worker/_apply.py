"""What one call applying a fitted model to a dataset runs: its rows read
where they lie, the model's output on them (see :mod:`.._driver._apply`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ._partitions import Partition, read_partition


@dataclass(frozen=True)
class ApplyTask:
    """What one call computes: ``output(rows, arrays)`` on its rows."""

    output: Callable[[dict, dict], dict]
    arrays: dict
    partition: Partition


def apply_model(task: ApplyTask, storage=None) -> dict:
    """Entry point of a Lithops call applying a model (``storage`` is
    injected by Lithops). No shared state: one map, no rounds."""
    rows = read_partition(task.partition, storage)
    return {"n_rows": rows["X"].shape[0], **task.output(rows, task.arrays)}
