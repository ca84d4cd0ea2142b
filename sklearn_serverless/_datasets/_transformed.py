"""A dataset seen through fitted transformers: what ``transform(dataset)``
returns. Nothing is read or written: the steps travel with the read specs,
and the workers of the next run apply them as they read (:mod:`._chain`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from ._chain import Step
from ._dataset import Dataset
from ._spec import ResolvedDataset


@dataclass(frozen=True)
class TransformedDataset(Dataset):
    """``base`` read through ``steps``, giving ``n_features`` numeric features
    named ``feature_names`` (None: unnamed)."""

    base: Dataset | None = None
    steps: tuple[Step, ...] = ()
    n_features: int = 0
    feature_names: tuple[str, ...] | None = None
    #: Per feature, 'number' or 'str'; empty: every one a number.
    kinds: tuple[str, ...] = ()
    format: ClassVar[str] = "transformed"

    def resolve(self, storage: Any = None, recheck: bool = True) -> ResolvedDataset:
        resolved = self.base.resolve(storage, recheck)
        return replace(resolved, steps=resolved.steps + self.steps,
                       n_features=self.n_features, feature_names=self.feature_names,
                       kinds=self.kinds or ("number",) * self.n_features, text_samples=(),
                       read_kinds=resolved.read_kinds or resolved.kinds)

    def fetched(self) -> dict:
        """What the workers fetched of the base dataset (see :meth:`Dataset.fetched`)."""
        return self.base.fetched()

    @property
    def label(self):
        return getattr(self.base, "label", None)

    @property
    def sample_weight(self):
        return getattr(self.base, "sample_weight", None)


def transformed(dataset: Dataset, step: Step, n_features: int,
                feature_names=None, kinds: tuple = ()) -> TransformedDataset:
    """``dataset`` with one more fitted step (steps of a transformed dataset
    are flattened: the base is always a dataset of objects)."""
    names = tuple(str(name) for name in feature_names) if feature_names is not None else None
    if isinstance(dataset, TransformedDataset):
        return TransformedDataset(dataset.path, base=dataset.base,
                                  steps=dataset.steps + (step,), n_features=n_features,
                                  feature_names=names, kinds=tuple(kinds))
    return TransformedDataset(dataset.path, base=dataset, steps=(step,),
                              n_features=n_features, feature_names=names, kinds=tuple(kinds))
