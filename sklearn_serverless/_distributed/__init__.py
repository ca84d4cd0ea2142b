"""The distributed algorithms: what runs inside the Lithops workers.

Nothing here imports scikit-learn (importing it costs each worker ~1 s): the
worker-side modules need numpy, scipy.sparse and the state store client.
"""
