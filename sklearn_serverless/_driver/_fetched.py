"""What the workers fetched of a dataset, counted on the dataset object over
every run that reads it (:meth:`sklearn_serverless._datasets.Dataset.fetched`)."""

from __future__ import annotations

#: What :meth:`Dataset.fetched` counts.
FETCHED = ("bytes", "reads", "cache_hits", "driver_bytes")


def note_fetched(dataset, reads: list[dict], driver: bool = False) -> None:
    """Add the workers' reads of ``dataset`` (each ``'bytes_fetched'``,
    ``'cache_hits'``) to what it has fetched; ``driver``: the driver's reads
    (row count, labels)."""
    fetched = dataset.cache().setdefault("fetched", dict.fromkeys(FETCHED, 0))
    n_bytes = sum(int(read.get("bytes_fetched") or 0) for read in reads)
    fetched["bytes"] += n_bytes
    fetched["reads"] += len(reads)
    fetched["cache_hits"] += sum(int(read.get("cache_hits") or 0) for read in reads)
    if driver:
        fetched["driver_bytes"] += n_bytes
