"""Datasets read by the workers straight from object storage.

``read_csv``, ``read_parquet`` and ``read_npy`` name a dataset (lazily);
``Dataset.resolve(storage)`` reads its metadata on the driver;
``ResolvedDataset.plan(n_workers)`` cuts it into ``ReadSpec`` s, and each
worker calls ``read_rows(spec, storage)``. Importing this package imports
numpy only (pyarrow is imported by the workers, when they read).
"""

from ._dataset import Dataset
from ._paths import LocalFiles
from ._read import read_rows
from ._readers import read_csv, read_npy, read_parquet
from ._spec import DataError, ReadSpec, ResolvedDataset

__all__ = ["DataError", "Dataset", "LocalFiles", "ReadSpec", "ResolvedDataset", "read_csv",
           "read_npy", "read_parquet", "read_rows"]
