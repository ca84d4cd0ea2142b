"""Leaf modules the driver and the workers both use: the limits derived from
``timeout``, process checks and scikit-learn's error messages. They import
nothing of this package."""
