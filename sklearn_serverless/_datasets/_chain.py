"""Fitted transformers applied by the workers as they read their rows.

A transformer fitted on a dataset (``ServerlessStandardScaler`` & co.)
returns, from ``transform(dataset)``, the same dataset with one more
:class:`Step`: its fitted statistics as numpy arrays. The worker that reads
the rows for the next run applies the steps in order (:func:`finish_rows`),
so nothing is read on the driver and nothing is written in between.

A worker's rows are a list of 1-D columns: float64 (NaN where a cell is
missing) or str (a text column). Every step maps such a list to another;
after the last one, every column is a number. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._text import keyed_width, text_keys


@dataclass(frozen=True)
class Step:
    """One fitted transformer, as its workers apply it.

    ``kind``: 'standard' (``(x - mean) / scale``), 'minmax'
    (``x * scale + min``, clipped to ``clip`` when given), 'impute' (NaN
    cells get ``fill``; columns ``keep`` kept), 'onehot' (categories
    ``cat<j>``, then the empty text cell when ``blank<j>`` is given,
    dropped category ``drop`` per column, -1 for none), 'select'
    (columns ``indices``) or 'columns' (``parts``: ``(indices, steps)`` pairs
    whose outputs are concatenated: a column transformer).
    """

    kind: str
    arrays: dict = field(default_factory=dict)
    parts: tuple = ()
    options: tuple = ()

    def option(self, name: str, default=None):
        return dict(self.options).get(name, default)


def _standard(step: Step, columns: list) -> list:
    mean, scale = step.arrays.get("mean"), step.arrays.get("scale")
    out = []
    for j, column in enumerate(columns):
        column = np.asarray(column, dtype=np.float64)
        if mean is not None:
            column = column - mean[j]
        if scale is not None:
            column = column / scale[j]
        out.append(column)
    return out


def _minmax(step: Step, columns: list) -> list:
    scale, low = step.arrays["scale"], step.arrays["min"]
    clip = step.option("clip")
    out = []
    for j, column in enumerate(columns):
        column = np.asarray(column, dtype=np.float64) * scale[j]
        column += low[j]
        if clip is not None:
            np.clip(column, clip[0], clip[1], out=column)
        out.append(column)
    return out


def _impute(step: Step, columns: list) -> list:
    fill, keep = step.arrays["fill"], step.arrays["keep"]
    out = []
    for j in keep:
        column = np.array(columns[j], dtype=np.float64)
        column[np.isnan(column)] = fill[j]
        out.append(column)
    return out


def _codes(categories: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's index among the sorted ``categories``, and whether it is
    one of them."""
    codes = np.searchsorted(categories, values)
    known = (codes < categories.size) & (
        categories[np.minimum(codes, max(categories.size - 1, 0))] == values)
    return codes, known


def _keyed_onehot(categories: np.ndarray, values: np.ndarray, blank: bool) -> list | None:
    """The one-hot columns of short text as integer comparisons, one per
    category (then the empty cell when ``blank``); None unless every value
    is exactly one of them (then the general path decides)."""
    width = keyed_width(categories, values) if categories.size else None
    if width is None:
        return None
    keys = text_keys(values, width)
    wanted = [*text_keys(categories, width), *([np.uint64(0)] if blank else [])]
    hits = [keys == key for key in wanted]
    if sum(int(np.count_nonzero(hit)) for hit in hits) != keys.size:
        return None
    return hits


def _onehot(step: Step, columns: list) -> list:
    drop = step.arrays["drop"]
    unknown = step.option("handle_unknown", "error")
    out = []
    for j, column in enumerate(columns):
        categories = step.arrays[f"cat{j}"]
        values = column.astype(str) if categories.dtype.kind == "U" else column
        n_codes = categories.size
        hits = _keyed_onehot(categories, values, f"blank{j}" in step.arrays)
        if hits is not None:
            out += [hit.astype(np.float64) for code, hit in enumerate(hits) if code != drop[j]]
            continue
        if f"blank{j}" in step.arrays:
            # An empty text cell is the missing category, after the others.
            blank = values == ""
            codes, known = _codes(categories, values)
            codes[blank], n_codes = categories.size, categories.size + 1
            known |= blank
        elif categories.dtype.kind == "f" and categories.size and np.isnan(categories[-1]):
            # NaN is a category (the last, as scikit-learn sorts it).
            codes = np.searchsorted(categories[:-1], values)
            known = (codes < categories.size - 1) & (
                categories[np.minimum(codes, categories.size - 2)] == values)
            codes[np.isnan(values)] = categories.size - 1
            known |= np.isnan(values)
        else:
            codes, known = _codes(categories, values)
        if not known.all():
            if unknown == "error":
                bad = values[~known][:1]
                raise ValueError(f"Found unknown categories {list(bad.tolist())} in column "
                                 f"{j} during transform")
        for code in range(n_codes):
            if code != drop[j]:
                out.append(((codes == code) & known).astype(np.float64))
    return out


def _select(step: Step, columns: list) -> list:
    return [columns[j] for j in step.arrays["indices"]]


def _columns(step: Step, columns: list) -> list:
    out = []
    for indices, steps in step.parts:
        out.extend(apply_steps(steps, [columns[j] for j in indices]))
    return out


_APPLY = {"standard": _standard, "minmax": _minmax, "impute": _impute, "onehot": _onehot,
          "select": _select, "columns": _columns}


def _standard_matrix(step: Step, X: np.ndarray) -> None:
    """:func:`_standard` on a whole float64 matrix, in place (the same
    operations on each cell, without a column at a time)."""
    if step.arrays.get("mean") is not None:
        X -= step.arrays["mean"]
    if step.arrays.get("scale") is not None:
        X /= step.arrays["scale"]


def apply_steps(steps, columns: list) -> list:
    """The columns after every step, in order."""
    for step in steps:
        columns = _APPLY[step.kind](step, columns)
    return columns


def split_columns(X: np.ndarray, text: dict) -> list:
    """A worker's rows as a list of columns (text ones as str arrays)."""
    return [text[j] if j in text else X[:, j] for j in range(X.shape[1])]


def _check_finite(X: np.ndarray, consumer: str, allow_nan: bool, input_name: str = "X"
                  ) -> None:
    """scikit-learn's ``check_array`` messages for NaN and infinity."""
    if np.isfinite(X).all():
        return
    has_nan = not allow_nan and bool(np.isnan(X).any())
    if not has_nan and not np.isinf(X).any():
        return
    if has_nan:
        message = f"Input {input_name} contains NaN."
        if consumer and input_name == "X":
            message += (f"\n{consumer} does not accept missing values encoded as NaN "
                        "natively. Alternatively, it is possible to preprocess the data, for "
                        "instance by using an imputer transformer in a pipeline or drop "
                        "samples with missing values. See "
                        "https://scikit-learn.org/stable/modules/impute.html")
    else:
        message = (f"Input {input_name} contains infinity or a value too large for "
                   f"{X.dtype!r}.")
    raise ValueError(message)


def finish_rows(rows: dict, spec) -> dict:
    """A format's rows made what the consuming step reads: the spec's steps
    applied, the dtype set, NaN and infinity checked as scikit-learn does."""
    text = rows.pop("text", None) or {}
    X = rows["X"]
    if spec.steps and not text and all(step.kind == "standard" for step in spec.steps):
        X = np.array(X, dtype=np.float64)  # a private copy, scaled in place
        for step in spec.steps:
            _standard_matrix(step, X)
    elif spec.steps:
        columns = apply_steps(spec.steps, split_columns(X, text))
        # A step may pass text on (a column selection): it stays text.
        text = {j: c for j, c in enumerate(columns) if c.dtype.kind == "U"}
        X = np.empty((X.shape[0], len(columns)))
        for j, column in enumerate(columns):
            X[:, j] = np.nan if j in text else column
    X = np.ascontiguousarray(X, dtype=spec.dtype)
    numeric = X if not text else X[:, [j for j in range(X.shape[1]) if j not in text]]
    _check_finite(numeric, spec.consumer, spec.allow_nan)
    rows["X"] = X
    if text:
        rows["text"] = text
    if "sample_weight" in rows:
        _check_finite(rows["sample_weight"], spec.consumer, False, "sample_weight")
    return rows
