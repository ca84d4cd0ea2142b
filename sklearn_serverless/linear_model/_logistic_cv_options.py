"""How ServerlessLogisticRegressionCV reads the options scikit-learn 1.9 is
deprecating (``l1_ratios``, ``penalty``, ``scoring``, ``use_legacy_attributes``),
with its FutureWarnings and errors word for word."""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from ._penalty import _check_solver


def resolve_options(estimator) -> tuple:
    """``(l1_ratios, l1_ratios_, penalty, scoring, legacy)``: scikit-learn 1.9's
    reading of ``l1_ratios``, ``penalty``, ``scoring``
    and ``use_legacy_attributes``, with its warnings and errors."""
    if isinstance(estimator.l1_ratios, str) and estimator.l1_ratios == "warn":
        l1_ratios = None
        warnings.warn(
            "The default value for l1_ratios will change from None to (0.0,) "
            "in version 1.10. From version 1.10 onwards, only array-like "
            "with values in [0, 1] will be allowed, None will be forbidden. "
            "To avoid this warning, explicitly set a value, "
            "e.g. l1_ratios=(0,).",
            FutureWarning, stacklevel=3,
        )
    else:
        l1_ratios = estimator.l1_ratios
    if estimator.penalty == "deprecated":
        if estimator.l1_ratios is None:
            warnings.warn(
                "'l1_ratios=None' was deprecated in version 1.8 and will "
                "trigger an error in 1.10. Use an array-like with values"
                "in [0, 1] instead.",
                FutureWarning, stacklevel=3,
            )
        if l1_ratios is None or np.all(np.asarray(l1_ratios) == 0):
            penalty = "l2"
        elif np.all(np.asarray(l1_ratios) == 1):
            penalty = "l1"
        else:
            penalty = "elasticnet"
    else:
        penalty = estimator.penalty
        warnings.warn(
            "'penalty' was deprecated in version 1.8 and will be removed in"
            " 1.10. To avoid this warning, leave 'penalty' set to its default"
            " value and use 'l1_ratios' and 'Cs' instead."
            " Use l1_ratios=(0,) instead of penalty='l2',"
            " l1_ratios=(1,) instead of penalty='l1',"
            " l1_ratios set to floats between 0 and 1 instead of"
            " penalty='elasticnet', and Cs=(np.inf,) instead of penalty=None.",
            FutureWarning, stacklevel=3,
        )
    if estimator.scoring == "warn":
        warnings.warn(
            "The default value of the parameter 'scoring' will change from None, "
            "i.e. accuracy, to 'neg_log_loss' in version 1.11. To silence this "
            "warning, explicitly set the scoring parameter: "
            "scoring='neg_log_loss' for the new, scoring='accuracy' or "
            "scoring=None for the old default.",
            FutureWarning, stacklevel=3,
        )
        scoring = None
    else:
        scoring = estimator.scoring
    if estimator.use_legacy_attributes == "warn":
        name = type(estimator).__name__
        warnings.warn(
            f"The fitted attributes of {name} will be "
            "simplified in scikit-learn 1.10 to remove redundancy. Set"
            "`use_legacy_attributes=False` to enable the new behavior now, or "
            "set it to `True` to silence this warning during the transition period "
            "while keeping the deprecated behavior for the time being. The default "
            "value of use_legacy_attributes will change from True to False in "
            f"scikit-learn 1.10. See the docstring of {name} "
            "for more details.",
            FutureWarning, stacklevel=3,
        )
        legacy = True
    else:
        legacy = estimator.use_legacy_attributes
    _check_solver(estimator.solver, penalty, estimator.dual)
    if penalty == "elasticnet":
        if (l1_ratios is None or len(l1_ratios) == 0 or any(
                not isinstance(r, numbers.Number) or r < 0 or r > 1 for r in l1_ratios)):
            # sklearn formats with ``% l1_ratios``, a TypeError for a tuple of two.
            raise ValueError("l1_ratios must be an array-like of numbers between "
                             f"0 and 1; got (l1_ratios={l1_ratios!r})")
        l1_ratios_ = l1_ratios
    else:
        if l1_ratios is not None and estimator.penalty != "deprecated":
            warnings.warn(
                "l1_ratios parameter is only used when penalty "
                f"is 'elasticnet'. Got (penalty={penalty})", stacklevel=3,
            )
        l1_ratios_ = [None] if l1_ratios is None else l1_ratios
    return l1_ratios, l1_ratios_, penalty, scoring, legacy
