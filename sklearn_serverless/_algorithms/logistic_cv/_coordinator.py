"""The coordinator of a cross-validated logistic regression: every (fold,
l1_ratio, C) model's solver runs in lockstep with the others (L-BFGS-B as
generators, :mod:`._lbfgs_steps`; OWL-QN in threads, :mod:`._lockstep`);
each round evaluates every running model in one pass of the workers over
their rows. Then, in the same run, the test folds are scored on the
workers and the best model is refitted on every row."""

from __future__ import annotations

import numpy as np

from ..._worker._rounds import Rounds
from ..logistic._objective import DistributedObjective
from ..logistic._params import LogisticParams
from ..logistic._solvers import SOLVERS
from ._kernels import score_of
from ._lbfgs_steps import available, lbfgs_steps
from ._lockstep import Lockstep
from ._params import LogisticCVParams


class ModelObjective(DistributedObjective):
    """One model's penalised objective; its evaluations go through the
    lockstep's batch (one round for every running model)."""

    def __init__(self, params: LogisticParams, fold: int, ask, rounds: Rounds | None = None):
        super().__init__(None, params)
        self.fold, self.ask, self.rounds = fold, ask, rounds

    def loss_gradient(self, coef: np.ndarray) -> tuple[float, np.ndarray]:
        self.n_evaluations += 1
        coef = np.ascontiguousarray(coef, dtype=np.float64)
        return self._finish(self.ask((self.fold, coef)), coef)

    def hessian_product(self, coef: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """One round for this model alone (the refit's Newton-CG polish)."""
        total = self.rounds.allreduce(
            "hessian_product", np.array([self.fold], dtype=np.int64),
            np.ascontiguousarray(coef, dtype=np.float64),
            np.ascontiguousarray(vector, dtype=np.float64))
        return total / self.sw_sum + self.l2_diag * vector


def _model_params(params: LogisticCVParams, fold: int, C: float, l1_ratio: float
                  ) -> LogisticParams:
    return LogisticParams(
        solver=params.solver, n_features=params.n_features,
        fit_intercept=params.fit_intercept, C=float(C), l1_ratio=float(l1_ratio),
        max_iter=params.max_iter, tol=params.tol, verbose=params.verbose,
        dtype=params.dtype, intercept_scaling=params.intercept_scaling,
        liblinear=params.intercept_scaling is not None, n_outputs=params.n_outputs,
        sw_sum=float(params.sw_sums[fold]),
        # L-BFGS in lockstep has no Newton-CG polish (see _polish): OWL-QN only.
        inner_tol=params.inner_tol if params.solver == "owlqn" else None)


def _polish(rounds: Rounds, params: LogisticCVParams, fit: dict, C: float, l1_ratio: float,
            log) -> dict:
    """The refit of 'liblinear', 'sag' or 'saga' with an L2 penalty, as
    ServerlessLogisticRegression fits it: Newton-CG steps from L-BFGS-B's
    point until max |gradient| <= ``inner_tol`` (one model, one round each)."""
    from ..logistic._newton_cg import newton_cg

    K = params.n_folds
    info = fit["lbfgs"]
    if (params.inner_tol is None or params.solver != "lbfgs" or info is None
            or info["status"] != 0 or fit["n_iter"] >= params.max_iter - 1):
        return fit
    model = _model_params(params, K, C, l1_ratio)

    def ask(request):
        fold, coef = request
        return rounds.allreduce("loss_gradient", np.array([fold], dtype=np.int64),
                                coef[None, :])[0]

    objective = ModelObjective(model, K, ask, rounds)
    coef, steps, _ = newton_cg(objective, fit["coef"], max_iter=params.max_iter - fit["n_iter"] - 1,
                               tol=params.inner_tol, eps=16 * np.finfo(params.dtype).eps,
                               verbose=params.verbose, log=log)
    return {**fit, "coef": coef, "n_iter": fit["n_iter"] + steps}


def _solve(params: LogisticCVParams, fold: int, C: float, l1_ratio: float,
           coef: np.ndarray, ask, log) -> dict:
    """One model fitted from ``coef`` by the chosen solver."""
    model = _model_params(params, fold, C, l1_ratio)
    out = {"warnings": [], "lbfgs": None}
    out.update(SOLVERS[params.solver](ModelObjective(model, fold, ask), coef, model, log))
    out["coef"] = np.asarray(out["coef"], dtype=np.float64)
    return out


def _lbfgs_model(params: LogisticCVParams, fold: int, C: float, l1_ratio: float,
                 coef: np.ndarray):
    """One model's L-BFGS-B as a generator (:mod:`._lbfgs_steps`): yields
    ``(fold, point)``, receives the workers' unpenalised sums there, returns
    what :func:`_solve` returns."""
    model = _model_params(params, fold, C, l1_ratio)
    objective = ModelObjective(model, fold, None)
    steps = lbfgs_steps(coef, params.max_iter, params.tol)
    point = next(steps)
    try:
        while True:
            total = yield (fold, point)
            objective.n_evaluations += 1
            point = steps.send(objective._finish(total, point))
    except StopIteration as stop:
        x, info = stop.value
    info["max_iter"] = params.max_iter
    return {"coef": x, "lbfgs": info, "n_iter": min(info["nit"], params.max_iter),
            "warnings": []}


def _drive(generators: list, evaluate) -> tuple[list, int, int]:
    """Run generators in lockstep from this thread: each round evaluates the
    request of every one still running (in generator order) and sends each
    its answer. Returns their return values, the rounds and the evaluations."""
    pending = {i: next(gen) for i, gen in enumerate(generators)}
    results: list = [None] * len(generators)
    n_batches = n_evaluations = 0
    while pending:
        order = sorted(pending)
        answers = evaluate([pending[i] for i in order])
        n_batches += 1
        n_evaluations += len(order)
        for i, answer in zip(order, answers, strict=True):
            try:
                pending[i] = generators[i].send(answer)
            except StopIteration as stop:
                results[i] = stop.value
                del pending[i]
    return results, n_batches, n_evaluations


class _Driver:
    """Runs solvers in lockstep: scipy's L-BFGS-B as generators in this
    thread when scipy allows (:func:`._lbfgs_steps.available`), else (and
    for OWL-QN) each solver in its own thread (:class:`._lockstep.Lockstep`)."""

    def __init__(self, rounds: Rounds, params: LogisticCVParams, log):
        self.params, self.log = params, log
        self.evaluate = _evaluate(rounds, params)
        self.generators = params.solver == "lbfgs" and available()
        self.n_batches = self.n_evaluations = 0

    def run(self, models: list[list[tuple]]) -> list[list[dict]]:
        """Each entry is a warm-started sequence of ``(fold, C, l1_ratio)``
        (its first from ``start``, or zeros): every model's fit, in order."""
        params, log = self.params, self.log
        if self.generators:
            def sequence(chain):
                fits, coef = [], chain[0][3]
                for fold, C, l1_ratio, _ in chain:
                    fits.append((yield from _lbfgs_model(params, fold, C, l1_ratio, coef)))
                    coef = fits[-1]["coef"]
                return fits
            results, batches, evaluations = _drive([sequence(c) for c in models],
                                                   self.evaluate)
        else:
            def task(chain):
                def run(ask):
                    fits, coef = [], chain[0][3]
                    for fold, C, l1_ratio, _ in chain:
                        fits.append(_solve(params, fold, C, l1_ratio, coef, ask, log))
                        coef = fits[-1]["coef"]
                    return fits
                return run
            lockstep = Lockstep(self.evaluate)
            results = lockstep.run([task(c) for c in models])
            batches, evaluations = lockstep.n_batches, lockstep.n_evaluations
        self.n_batches += batches
        self.n_evaluations += evaluations
        return results


def _evaluate(rounds: Rounds, params: LogisticCVParams):
    def evaluate(requests: list) -> list:
        folds = np.array([fold for fold, _ in requests], dtype=np.int64)
        coefs = np.stack([coef for _, coef in requests])
        return list(rounds.allreduce("loss_gradient", folds, coefs))
    return evaluate


def coordinate(rounds: Rounds, params: LogisticCVParams) -> dict:
    """Fit every fold's path, score the test folds, refit the best (see module doc)."""
    log = rounds.log if params.verbose else _no_log
    driver = _Driver(rounds, params, log)
    K, width = params.n_folds, params.width
    if params.refit_coef is not None:
        refit = driver.run([[(K, params.refit_C, params.refit_l1_ratio,
                              params.refit_coef)]])[0][0]
        refit = _polish(rounds, params, refit, params.refit_C, params.refit_l1_ratio, log)
        return {"refit": refit, "n_batches": driver.n_batches}
    Cs, l1_ratios = np.asarray(params.Cs, dtype=float), np.asarray(params.l1_ratios, dtype=float)
    nl, nC = l1_ratios.size, Cs.size
    zeros = np.zeros(width)
    if params.strategy == "path":
        # scikit-learn's warm start along Cs, in their order, per fold and l1_ratio.
        chains = [[(k, C, l1_ratios[li], zeros) for C in Cs]
                  for k in range(K) for li in range(nl)]
    else:
        chains = [[(k, Cs[ci], l1_ratios[li], zeros)]
                  for k in range(K) for li in range(nl) for ci in range(nC)]
    fits = [fit for run in driver.run(chains) for fit in run]  # (K, nl, nC) in C order
    log(f"{len(fits)} fold models fitted in {driver.n_batches} rounds")
    coefs = np.stack([fit["coef"] for fit in fits]).reshape(K, nl, nC, width)
    out = {
        "coefs": coefs,
        "n_iter": np.array([fit["n_iter"] for fit in fits]).reshape(K, nl, nC),
        "lbfgs": [fit["lbfgs"] for fit in fits],
        "warnings": [w for fit in fits for w in fit["warnings"]],
    }
    if params.scoring is not None:
        folds = np.repeat(np.arange(K, dtype=np.int64), nl * nC)
        stats = rounds.allreduce("score", folds, coefs.reshape(-1, width))
        scores = score_of(stats, params.scoring).reshape(K, nl, nC)
        out["scores"] = scores
        if params.refit:
            # scikit-learn's choice: the first best of the fold sums, C before l1_ratio.
            summed = scores.sum(axis=0).T  # (nC, nl)
            ci, li = np.unravel_index(np.argmax(summed), summed.shape)
            start = np.mean(coefs[:, li, ci], axis=0)
            log(f"refit at C={Cs[ci]:g}, l1_ratio={l1_ratios[li]:g}")
            refit = driver.run([[(K, Cs[ci], l1_ratios[li], start)]])[0][0]
            out["refit"] = _polish(rounds, params, refit, Cs[ci], l1_ratios[li], log)
            out["best"] = (int(ci), int(li))
    out["n_batches"] = driver.n_batches
    out["n_evaluations"] = driver.n_evaluations
    return out


def _no_log(line: str) -> None:
    """Where progress goes when nobody prints it."""
