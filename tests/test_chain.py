"""What the workers do to text as they read: short cells counted and looked
up as integer keys (the same results as numpy on the str arrays), and a
fitted encoder's step equal to scikit-learn's transform on the same cells."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import OneHotEncoder

from sklearn_serverless import ServerlessOneHotEncoder
from sklearn_serverless._datasets._chain import apply_steps
from sklearn_serverless._datasets._text import distinct, keyed_width, text_keys


def _cells(rng, n: int, width: int, alphabet: list[str]) -> np.ndarray:
    lengths = rng.integers(0, width + 1, n)
    return np.array(["".join(rng.choice(alphabet, k)) for k in lengths], dtype=str)


ALPHABETS = {
    "ascii": list("AB9z"),
    "unicode": ["a", "é", "\u4e2d", "\U0001f600", "\U0010ffff"],  # up to the last code point
}


@pytest.mark.parametrize("alphabet", ALPHABETS)
@pytest.mark.parametrize("width", [1, 2, 3, 5])
def test_distinct_is_numpys_unique(alphabet, width):
    rng = np.random.default_rng(width)
    cells = _cells(rng, 5000, width, ALPHABETS[alphabet])
    values, counts = distinct(cells)
    expected, expected_counts = np.unique(cells, return_counts=True)
    assert values.dtype == expected.dtype
    np.testing.assert_array_equal(values, expected)
    np.testing.assert_array_equal(counts, expected_counts)
    if keyed_width(cells) is not None:  # keys sort as the cells do
        keys = text_keys(cells, keyed_width(cells))
        np.testing.assert_array_equal(np.argsort(keys, kind="stable"),
                                      np.argsort(cells, kind="stable"))
    assert (keyed_width(cells) is None) == (cells.dtype.itemsize // 4 > 3)


def test_distinct_of_numbers_and_empty_columns():
    numbers = np.array([2.0, np.nan, 1.0, 2.0, np.nan])
    for got, expected in zip(distinct(numbers), np.unique(numbers, return_counts=True),
                             strict=True):
        np.testing.assert_array_equal(got, expected)
    values, counts = distinct(np.array([], dtype=str))
    assert values.size == counts.size == 0
    assert keyed_width(np.array(["ab"], dtype=">U2")) is None  # not native: numpy's path


def _fitted(cells: np.ndarray, **params):
    ours = ServerlessOneHotEncoder(sparse_output=False, **params).fit(cells)
    theirs = OneHotEncoder(sparse_output=False, **params).fit(cells)
    return ours, theirs


@pytest.mark.parametrize("drop", [None, "first"])
@pytest.mark.parametrize("width", [2, 3, 6])
def test_the_encoders_step_is_scikit_learns_transform(width, drop):
    """Short cells take the integer path, long ones numpy's; the same columns."""
    rng = np.random.default_rng(0)
    alphabet = list("ABCD")
    train = np.stack([_cells(rng, 400, width, alphabet),
                      rng.choice(["JFK", "LGA", "EWR"], 400)], axis=1).astype(object)
    train[train == ""] = "Q"  # an empty cell is the missing category on a CSV dataset
    ours, theirs = _fitted(train, drop=drop)
    cells = train[rng.permutation(400)]
    columns = apply_steps((ours._step(),), [cells[:, 0].astype(str), cells[:, 1].astype(str)])
    np.testing.assert_array_equal(np.column_stack(columns), theirs.transform(cells))


def test_unknown_categories_are_refused_or_ignored_as_scikit_learn_does():
    train = np.array([["UA"], ["DL"], ["AA"]], dtype=object)
    cells = np.array([["DL"], ["ZZ"], ["UA"]], dtype=object)
    ours, theirs = _fitted(train)
    with pytest.raises(ValueError, match=r"Found unknown categories \['ZZ'\] in column 0"):
        apply_steps((ours._step(),), [cells[:, 0].astype(str)])
    ours, theirs = _fitted(train, handle_unknown="ignore")
    columns = apply_steps((ours._step(),), [cells[:, 0].astype(str)])
    np.testing.assert_array_equal(np.column_stack(columns), theirs.transform(cells))


def test_an_empty_cell_is_the_missing_category():
    """A CSV dataset's empty text cell is NaN to the encoder: its own
    column, after the others, as scikit-learn's on pandas' cells."""
    train = np.array([["UA"], [np.nan], ["AA"], ["UA"]], dtype=object)
    ours, theirs = _fitted(train)
    cells = np.array([["AA"], [""], ["UA"], [""]], dtype=str)
    columns = apply_steps((ours._step(),), [cells[:, 0]])
    as_pandas = cells.astype(object)
    as_pandas[as_pandas == ""] = np.nan
    np.testing.assert_array_equal(np.column_stack(columns), theirs.transform(as_pandas))
