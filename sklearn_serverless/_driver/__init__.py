"""Where a fit runs: the Lithops backends (:mod:`._backends`), the one map
per fit and the deadlines derived from ``timeout`` (:mod:`._fit`), where the
rows go (:mod:`._placement`), the driver's watch over the workers
(:mod:`._watch`) and the warm localhost runtime (:mod:`._warm`)."""
