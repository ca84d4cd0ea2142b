"""scikit-learn's error messages, word for word, in one place: raised on the
driver for data in memory and by the coordinator for a dataset. No
scikit-learn import (the coordinator runs in a worker)."""

from __future__ import annotations


def too_few_samples(n_samples: int, n_clusters: int) -> ValueError:
    return ValueError(f"n_samples={n_samples} should be >= n_clusters={n_clusters}.")


def one_class(label) -> ValueError:
    return ValueError(
        "This solver needs samples of at least 2 classes in the data, but the "
        f"data contains only one class: {label!r}"
    )


def liblinear_multiclass() -> ValueError:
    return ValueError(
        "The 'liblinear' solver does not support multiclass classification"
        " (n_classes >= 3). Either use another solver or wrap the "
        "estimator in a OneVsRestClassifier to keep applying a "
        "one-versus-rest scheme."
    )


def warm_start_shape(given: tuple, expected: tuple, n_outputs: int) -> ValueError:
    """A previous fit's coefficients (intercept column included) of the
    wrong shape for this fit's classes and features."""
    if n_outputs == 1:
        d = expected[-1]
        return ValueError(
            f"Initialization coef is of shape {given}, expected shape {(d,)} or (1, {d})")
    return ValueError(f"Initialization coef is of shape {given}, expected shape {expected}")


#: What scikit-learn adds to a logistic regression's ConvergenceWarning.
CONVERGENCE_ADVICE = (
    "Please also refer to the documentation for alternative solver options:\n"
    "    https://scikit-learn.org/stable/modules/linear_model.html"
    "#logistic-regression"
)
