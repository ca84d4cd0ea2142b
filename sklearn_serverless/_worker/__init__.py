"""The worker runtime: everything that runs inside a function.

The loop every worker runs (:mod:`._loop`: generations, leases, replay),
the coordinator's rounds (:mod:`._rounds`), work sharing between workers on
one machine (:mod:`._sharing`), a dataset's first rounds (:mod:`._prologue`),
partition reads (:mod:`._partitions`) and the pooled worker
(:mod:`._pool`). The types of the public algorithm API are defined here and
exported by :mod:`sklearn_serverless.distributed`.

Nothing here imports the driver (:mod:`.._driver`), the estimators or
scikit-learn (importing it costs each worker about a second).
"""
