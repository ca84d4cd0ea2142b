"""Transformers that fit where the data lies: drop-ins for scikit-learn's on
arrays (they are scikit-learn's), fitted by the workers' sums on a dataset,
whose ``transform`` returns a dataset the next step's workers transform as
they read."""

from ._column import ServerlessColumnTransformer, make_column_transformer
from ._encoders import ServerlessOneHotEncoder
from ._imputer import ServerlessSimpleImputer
from ._scalers import ServerlessMinMaxScaler, ServerlessStandardScaler

__all__ = ["ServerlessColumnTransformer", "ServerlessMinMaxScaler", "ServerlessOneHotEncoder",
           "ServerlessSimpleImputer", "ServerlessStandardScaler", "make_column_transformer"]
