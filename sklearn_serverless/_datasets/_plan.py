"""How work is cut into one part per worker: deterministic, from sizes only."""

from __future__ import annotations

from collections.abc import Sequence


def even_cuts(total: int, n_parts: int) -> list[int]:
    """``n_parts + 1`` increasing boundaries from 0 to ``total``, as even as
    integers allow (part sizes differ by at most one). Every split of rows or
    bytes into workers' parts uses it."""
    return [(total * k) // n_parts for k in range(n_parts + 1)]


def split_concatenation(lengths: Sequence[int], n_parts: int) -> list[list[tuple[int, int, int]]]:
    """Cuts the concatenation of segments of these lengths into ``n_parts``
    contiguous ranges of (nearly) equal total length.

    Returns, for each part, its pieces ``(segment, start, stop)`` in segment
    coordinates, in segment order; a part may span several segments, and a
    segment several parts. Empty segments get no piece.
    """
    cuts = even_cuts(sum(lengths), n_parts)
    parts = []
    for low, high in zip(cuts[:-1], cuts[1:], strict=False):
        pieces, offset = [], 0
        for index, length in enumerate(lengths):
            start, stop = max(low - offset, 0), min(high - offset, length)
            if start < stop:
                pieces.append((index, start, stop))
            offset += length
        parts.append(pieces)
    return parts


def balance_runs(weights: Sequence[int], n_parts: int) -> list[tuple[int, int]]:
    """Cuts a sequence of items (row groups) into ``n_parts`` non-empty
    contiguous runs ``[start, stop)`` whose summed weights (rows) are balanced.

    Each cut goes to the item boundary nearest the even share, keeping at least
    one item for every run still to come. Needs ``1 <= n_parts <= len(weights)``.
    """
    count = len(weights)
    if not 1 <= n_parts <= count:
        raise ValueError(f"Cannot cut {count} items into {n_parts} runs.")
    cumulative = [0]
    for weight in weights:
        cumulative.append(cumulative[-1] + weight)
    total = cumulative[-1]
    cuts = [0]
    for k in range(1, n_parts):
        target = total * k / n_parts
        low, high = cuts[-1] + 1, count - (n_parts - k)
        best = min(range(low, high + 1), key=lambda j: (abs(cumulative[j] - target), j))
        cuts.append(best)
    cuts.append(count)
    return list(zip(cuts[:-1], cuts[1:], strict=False))
