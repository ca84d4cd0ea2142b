"""What every estimator shares, on the driver: the execution parameters,
``timings_``, verbose lines and the runs through :mod:`.._driver`."""
