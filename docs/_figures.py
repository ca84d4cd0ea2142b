"""The speed figures quoted in the README and the documentation, read from the
benchmark results they come from (``docs/img/*.json``).

One source: the "How fast" table of README.md, docs/index.rst and the "At a
glance" table of docs/benchmarks.md are rendered here from the JSON files (and
the tables of a cold function's start, the search and the pipeline benchmarks
in docs/benchmarks.md), and
``QUOTED`` lists every figure the prose of those pages and the user guide
quotes, with the result it comes from. ``tests/test_docs_figures.py`` (and
``make docs``) fail when a page disagrees with its JSON file.

    python docs/_figures.py            # rewrite the tables from the JSON files
    python docs/_figures.py --check    # exit 1 if a table or a quoted figure is stale
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"


def load(name: str) -> dict:
    """One benchmark result file of docs/img/."""
    with open(IMG / f"{name}.json", encoding="utf-8") as file:
        return json.load(file)


def _find(rows: list[dict], **match) -> dict:
    found = [row for row in rows if all(row.get(k) == v for k, v in match.items())]
    if len(found) != 1:
        raise KeyError(f"expected one result with {match}, found {len(found)}")
    return found[0]


# Formats --------------------------------------------------------------------------------

def ratio(value: float) -> str:
    """A time ratio to scikit-learn's: ``0.96x``, ``5.2x``."""
    return f"{value:.2f}x" if value < 2 else f"{value:.1f}x"


def ratio_range(values: list[float]) -> str:
    low, high = min(values), max(values)
    return ratio(low) if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}-{high:.2f}x"


def ms(seconds: float) -> str:
    """Milliseconds, as the tables quote them: ``18 ms``, ``3.2 ms``."""
    value = seconds * 1000
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


# Figures ---------------------------------------------------------------------------------

def _kmeans_fit(shape: str) -> float:
    return _find(load("kmeans-kernel")["fits"], shape=shape)["ratio"]


def _cv(problem: str, arm: str) -> dict:
    return _find(load("logistic-cv")["results"], problem=problem, arm=arm)


def _solver(name: str) -> dict:
    return _find(load("solvers-1M")["results"], solver=name)


def _small(arm: str, source: str = "fixed-cost-pool") -> float:
    return load(source)["small"][arm]["median"]


#: name -> (result file it reads, the figure as the pages write it).
FIGURES: dict[str, tuple[str, Callable[[], str]]] = {
    "kmeans-300k-10": ("kmeans-kernel", lambda: ratio(_kmeans_fit("d10"))),
    "kmeans-300k-50": ("kmeans-kernel", lambda: ratio(_kmeans_fit("d50"))),
    "kmeans-n-init": ("kmeans-n-init", lambda: ratio(load("kmeans-n-init")["ratio"])),
    "lbfgs-300k": ("logistic-300k", lambda: ratio(load("logistic-300k")["results"][0]["ratio"])),
    "sag-saga-1M": ("solvers-1M", lambda: ratio_range(
        [_solver("sag")["ratio"], _solver("saga")["ratio"]])),
    "cv-large-path": ("logistic-cv", lambda: ratio(_cv("large", "path")["ratio"])),
    "cv-large-grid": ("logistic-cv", lambda: ratio(_cv("large", "grid")["ratio"])),
    "cv-small-path": ("logistic-cv", lambda: ratio(_cv("breast_cancer", "path")["ratio"])),
    "cv-small-grid": ("logistic-cv", lambda: ratio(_cv("breast_cancer", "grid")["ratio"])),
    "cv-large-path-iterations": ("logistic-cv", lambda: str(_cv("large", "path")["n_iter_sum"])),
    "cv-large-path-rounds": ("logistic-cv", lambda: str(_cv("large", "path")["n_rounds"])),
    "cv-large-grid-iterations": ("logistic-cv", lambda: str(_cv("large", "grid")["n_iter_sum"])),
    "cv-large-grid-rounds": ("logistic-cv", lambda: str(_cv("large", "grid")["n_rounds"])),
    "small-logistic-pool": ("fixed-cost-pool", lambda: ms(_small("ours logistic"))),
    "small-kmeans-pool": ("fixed-cost-pool", lambda: ms(_small("ours kmeans"))),
    "small-logistic-sklearn": ("fixed-cost-pool", lambda: ms(_small("sklearn logistic"))),
    "small-kmeans-sklearn": ("fixed-cost-pool", lambda: ms(_small("sklearn kmeans"))),
    "small-logistic-no-pool": ("fixed-cost-pool", lambda: ms(_small("no pool logistic"))),
    "small-kmeans-no-pool": ("fixed-cost-pool", lambda: ms(_small("no pool kmeans"))),
    "empty-map": ("fixed-cost-pool", lambda: ms(_small("empty map"))),
    "grid-search-pool": ("fixed-cost-pool", lambda: ratio(
        load("fixed-cost-pool")["grid"]["ratio"])),
    "kmeans-numpy-300k-10": ("kmeans-kernel-numpy", lambda: ratio(
        _find(load("kmeans-kernel-numpy")["fits"], shape="d10")["ratio"])),
    "kmeans-numpy-300k-50": ("kmeans-kernel-numpy", lambda: ratio(
        _find(load("kmeans-kernel-numpy")["fits"], shape="d50")["ratio"])),
    "kmeans-flights": ("kmeans-kernel-flights", lambda: ratio(
        _find(load("kmeans-kernel-flights")["fits"], shape="flights")["ratio"])),
    "pipeline-s3": ("pipeline-dataset", lambda: ratio(max(
        load("pipeline-dataset")["arms"]["ours"]["ratio"],
        load("pipeline-dataset")["arms"]["ours"].get("ratio_to_reference_alone", 0.0)))),
    "search-parquet": ("search_dataset", lambda: ratio(
        load("search_dataset")["dataset"]["arms"]["storage"]["ratio"])),
}


def figure(name: str) -> str:
    """The figure ``name`` as the pages write it, from its result file."""
    return FIGURES[name][1]()


@dataclass(frozen=True)
class Row:
    """One line of the "How fast" table."""

    fit: str            # markdown; backticks become rst literals
    figure: Callable[[], str]
    section: str        # anchor in docs/benchmarks.md


def _small_fit() -> str:
    return (f"{figure('small-logistic-pool')} (logistic) and {figure('small-kmeans-pool')} "
            f"(k-means); scikit-learn: {figure('small-logistic-sklearn')} and "
            f"{figure('small-kmeans-sklearn')}")


ROWS = (
    Row("a small fit, 2,000 x 10, on the pool of workers", _small_fit,
        "with-a-pool-of-workers"),
    Row("`GridSearchCV`, 4 C x cv=5 on breast_cancer (21 small fits, one worker each: "
        "the default for 455 rows)",
        lambda: figure("grid-search-pool"), "with-a-pool-of-workers"),
    Row("k-means, 300,000 x 10, k=20, 28 iterations",
        lambda: figure("kmeans-300k-10"), "k-means-speed"),
    Row("k-means, 300,000 x 50, k=20, 30 iterations",
        lambda: figure("kmeans-300k-50"), "k-means-speed"),
    Row("k-means, the flights table (327,346 x 10, k=16)",
        lambda: figure("kmeans-flights"), "k-means-speed"),
    Row("scaler + encoder + logistic regression on 8 CSV objects in S3 (flights), "
        "against pandas + scikit-learn", lambda: figure("pipeline-s3"),
        "a-pipeline-where-the-data-lies"),
    Row("`GridSearchCV` (scaler + logistic regression, 3 C x cv=5) on a 300,000 x 50 "
        "Parquet object in S3, against pandas + scikit-learn", lambda: figure("search-parquet"),
        "model-selection-on-datasets"),
    Row("k-means, 300,000 x 10, `init='random', n_init=10` (in lockstep)",
        lambda: figure("kmeans-n-init"), "k-means-initialisations-in-lockstep"),
    Row("logistic regression lbfgs, 300,000 x 50", lambda: figure("lbfgs-300k"),
        "logistic-regression-speed"),
    Row("logistic regression sag / saga, 1,000,000 x 50", lambda: figure("sag-saga-1M"),
        "logistic-regression-speed"),
    Row("`ServerlessLogisticRegressionCV`, 300,000 x 50, `Cs=10, cv=5`",
        lambda: figure("cv-large-path"), "model-selection"),
    Row("`ServerlessLogisticRegressionCV`, breast_cancer, 4 Cs, cv=5",
        lambda: figure("cv-small-path"), "model-selection"),
)


# Tables ----------------------------------------------------------------------------------

BEGIN, END = "figures:how-fast", "figures:end"


def markdown_table() -> str:
    lines = ["| fit, 2 workers on 2 cores | time against scikit-learn's |", "|---|---|"]
    lines += [f"| {row.fit} | {row.figure()} |" for row in ROWS]
    return "\n".join(lines)


def glance_table() -> str:
    lines = ["| fit (2 workers on 2 cores) | against scikit-learn's wall time | section |",
             "|---|---|---|"]
    lines += [f"| {row.fit} | {row.figure()} | [more](#{row.section}) |" for row in ROWS]
    return "\n".join(lines)


def rst_table() -> str:
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 60 40", "",
             "   * - fit, 2 workers on 2 cores", "     - time against scikit-learn's"]
    for row in ROWS:
        lines += [f"   * - {row.fit.replace('`', '``')}", f"     - {row.figure()}"]
    return "\n".join(lines)


def _timed(stats: dict, unit=None) -> str:
    """A median with its range (``18 ms (12-25)``), from the recorded
    ``min`` and ``max`` or the repeats' ``times``."""
    unit = unit or (ms if stats["median"] < 1 else _seconds)
    times = stats.get("times") or [stats["median"]]
    bounds = (stats.get("min", min(times)), stats.get("max", max(times)))
    low, high = (unit(t).rsplit(" ", 1)[0] for t in bounds)
    return f"{unit(stats['median'])} ({low}-{high})"


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def _fine_seconds(value: float) -> str:
    """Seconds to the millisecond: ``0.051 s``."""
    return f"{value:.3f} s"


#: The phases of a cold function's start (benchmarks/cold_function.py), as the table names them.
COLD_PHASES = (
    ("imports", "imports: numpy, the worker runtime, the Redis client"),
    ("kernel_import", "k-means' kernel imported (scipy.sparse, scipy's BLAS, the compiled "
                      "extension) and called once"),
    ("task", "the task unpickled"),
    ("store_connect", "the state store: connection, claim, lease"),
    ("rows_read", "the worker's rows read from the storage objects"),
    ("first_round", "its first round: built, message awaited, computed, posted"),
)


def cold_table() -> str:
    summary = load("cold-function")["summary"]
    lines = ["| phase | cold function | warm (a fork of the warm runtime) |", "|---|---|---|"]
    for key, name in COLD_PHASES:
        lines.append(f"| {name} | {_timed(summary['cold']['phases'][key])} | "
                     f"{_timed(summary['warm']['phases'][key])} |")
    lines.append(f"| **entry to first round** | **{_timed(summary['cold']['total'])}** | "
                 f"**{_timed(summary['warm']['total'])}** |")
    return "\n".join(lines)


COLD = "figures:cold-function"


def search_table() -> str:
    """The search on datasets (docs/img/search_dataset.json): the arms, then
    where the storage arm's time went and what it read, when recorded."""
    result = load("search_dataset")
    storage, sklearn = (result["dataset"]["arms"][arm]
                        for arm in ("storage", "download + sklearn"))
    memory = result["memory"]["arms"]
    lines = ["| search | ours | scikit-learn | ratio |", "|---|---|---|---|",
             f"| on the Parquet object (pipeline) | {_seconds(storage['median'])} | "
             f"{_seconds(sklearn['median'])} (download, parse, search) | "
             f"**{ratio(storage['ratio'])}** |",
             f"| in memory, breast_cancer | {_seconds(memory['ours']['median'])} | "
             f"{_seconds(memory['sklearn']['median'])} | {ratio(memory['ours']['ratio'])} |"]
    profiles = storage.get("profile")
    if profiles:
        # The repetition nearest the median.
        last = min(profiles, key=lambda p: abs(p["search"] - storage["median"]))
        fetched = storage["fetched"][profiles.index(last)]
        share = lambda seconds: f"{seconds / last['search']:.0%}"  # noqa: E731
        lines += ["", "| where the storage arm's time went | seconds | share |", "|---|---|---|",
                  f"| the search | {_seconds(last['search'])} | 100% |",
                  f"| {last['n_fits']} runs (fits): in all | {_seconds(last['fits'])} | "
                  f"{share(last['fits'])} |",
                  f"| of which the workers' loads (slowest worker per run) | "
                  f"{_seconds(last['fits_load'])} | {share(last['fits_load'])} |",
                  f"| of which their {last['n_rounds']} rounds | "
                  f"{_seconds(last['fits_rounds'])} | {share(last['fits_rounds'])} |",
                  f"| {last['n_scores']} scores (on the pool) | {_seconds(last['scores'])} | "
                  f"{share(last['scores'])} |",
                  f"| the driver besides | {_seconds(last['driver'])} | "
                  f"{share(last['driver'])} |",
                  "", "| what the search read (`dataset.fetched()`) | |", "|---|---|",
                  f"| bytes fetched | {fetched['bytes'] / 1e6:.1f} MB (the object: "
                  f"{result['dataset']['mb']:.1f} MB) |",
                  f"| the workers' reads | {fetched['reads']}, of which "
                  f"{fetched['cache_hits']} served by rows a pool worker kept |"]
    return "\n".join(lines)


#: The arms of benchmarks/pipeline_dataset.py, as the table names them.
PIPELINE_ARMS = {
    "ours": '`fit(read_csv(prefix, label="late"))` on a pool (rows kept between the steps)',
    "ours, no pool": "the same, `worker_pool=False` (a map per step)",
    "pandas + sklearn": "boto3 GETs, pandas `read_csv`, scikit-learn's pipeline",
}


def pipeline_table() -> str:
    """The arms of the pipeline benchmark, its target, and where the time of
    ours went (``profile``: medians over the repeats)."""
    result = load("pipeline-dataset")
    lines = ["| arm | median | range | time / pandas + sklearn | bytes fetched / objects' "
             "size | GETs | n_iter | max abs coef diff |", "|---|---|---|---|---|---|---|---|"]
    for name, label in PIPELINE_ARMS.items():
        arm = result["arms"][name]
        baseline = name == "pandas + sklearn"
        gets = sorted(arm["gets"])[len(arm["gets"]) // 2]
        lines.append(
            f"| {label} | {arm['median']:.2f} s | {min(arm['times']):.2f}-"
            f"{max(arm['times']):.2f} | {'1' if baseline else ratio(arm['ratio'])} | "
            f"{arm['bytes_ratio']:.2f}x | {gets} | {arm['n_iter']} | "
            f"{'' if baseline else format(arm['max_abs_coef_diff'], '.1e')} |")
    ours = result["arms"]["ours"]
    alone = result.get("reference_alone")
    # The stricter of the two references: interleaved, or alone after our workers ended.
    worst = max(ours["ratio"], ours.get("ratio_to_reference_alone", 0.0))
    met = "met" if worst <= 1.0 else "not met"
    against_alone = ("" if alone is None else
                     f" ({ratio(ours['ratio_to_reference_alone'])} against pandas + "
                     f"scikit-learn timed alone, {alone['median']:.2f} s, with no worker "
                     "of ours alive)")
    lines += ["", f"Time target (at most 1.0x pandas + scikit-learn): {met}, "
              f"{ratio(ours['ratio'])}{against_alone}. Bytes target (at most 1.2x the "
              "objects' size): "
              f"{'met' if ours['bytes_ratio'] <= 1.2 else 'not met'}, "
              f"{ours['bytes_ratio']:.2f}x."]
    profile = result.get("profile")
    if profile:
        lines += ["", "| where the time of `ours` went (medians) | wall | workers' load | "
                  "rounds | hand-off and results |", "|---|---|---|---|---|",
                  f"| the driver, outside the runs (listing the dataset, each step's set-up) "
                  f"| {ms(profile['driver'])} | | | |"]
        for key, label in (("columns", "the column transformer's run (scaler and encoder: "
                                       "fetch, parse, statistics)"),
                           ("model", "the model's run (rows kept, transformed by the fitted "
                                     "steps; L-BFGS)")):
            lines.append(f"| {label} | {ms(profile[key + '_run'])} | "
                         f"{ms(profile[key + '_load'])} | {ms(profile[key + '_rounds'])} "
                         f"({int(profile[key + '_n_rounds'])}) | {ms(profile[key + '_rest'])} |")
        lines.append(f"| the whole fit | {ms(profile['wall'])} | | | |")
    return "\n".join(lines)


def fixed_cost_table() -> str:
    """Small fits on the pool and without, and the grid search
    (docs/img/fixed-cost-pool.json)."""
    result = load("fixed-cost-pool")
    small, grid = result["small"], result["grid"]
    lines = ["| 2,000 x 10, 2 workers, embedded store | scikit-learn | pool (default) | "
             "no pool (`worker_pool=False`) |", "|---|---|---|---|"]
    for name, label in (("logistic", "logistic regression"), ("kmeans", "k-means, k=8")):
        ours = small[f"ours {name}"]
        lines.append(f"| {label} ({ours['n_rounds']} rounds) | "
                     f"{_timed(small[f'sklearn {name}'])} | **{_timed(ours)}** | "
                     f"{_timed(small[f'no pool {name}'])} |")
    lines.append(f"| empty Lithops map of 2 calls | | | {_timed(small['empty map'])} |")
    lines += ["", "| GridSearchCV, 4 C x cv=5, scaled breast_cancer | seconds | "
              "/ scikit-learn |", "|---|---|---|",
              f"| scikit-learn's `LogisticRegression` | "
              f"{_timed(grid['sklearn grid'], _fine_seconds)} | 1 |",
              f"| `ServerlessLogisticRegression()` (one worker for 455 rows, the default) | "
              f"{_timed(grid['ours grid'], _fine_seconds)} | **{ratio(grid['ratio'])}** |",
              f"| `ServerlessLogisticRegression(n_workers=2)` | "
              f"{_timed(grid['ours grid 2 workers'], _fine_seconds)} | "
              f"{ratio(grid['ratio 2 workers'])} |"]
    return "\n".join(lines)


#: The k-means fits of benchmarks/kmeans_kernel.py, as the table names them:
#: (result file, shape, label).
KMEANS_FITS = (
    ("kmeans-kernel", "d10", "300,000 x 10"),
    ("kmeans-kernel", "d50", "300,000 x 50"),
    ("kmeans-kernel-flights", "flights", "flights, 327,346 x 10, k=16, k-means++"),
    ("kmeans-kernel-numpy", "d10", "300,000 x 10"),
    ("kmeans-kernel-numpy", "d50", "300,000 x 50"),
)


def kmeans_table() -> str:
    """Whole k-means fits against scikit-learn's (docs/img/kmeans-kernel*.json)."""
    lines = ["| fit | kernel | scikit-learn | ours | ratio | our rounds in all |",
             "|---|---|---|---|---|---|"]
    for name, shape, label in KMEANS_FITS:
        fit = _find(load(name)["fits"], shape=shape)
        kernel = "numpy (no C compiler)" if name.endswith("numpy") else "compiled"
        bold = "**" if kernel == "compiled" else ""
        lines.append(f"| {label} ({max(fit['n_iter'])} iterations) | {kernel} | "
                     f"{_timed(fit['sklearn'], _seconds)} | {_timed(fit['ours'], _seconds)} | "
                     f"{bold}{ratio(fit['ratio'])}{bold} | {_seconds(fit['rounds_total_s'])} |")
    return "\n".join(lines)


#: The problems and arms of benchmarks/logistic_cv.py, as the table names them.
CV_PROBLEMS = {"breast_cancer": "breast_cancer scaled (569 x 30), `Cs=[0.01, 0.1, 1, 10], cv=5`",
               "large": "300,000 x 50 binary, `Cs=10, cv=5`"}
CV_ARMS = {"sklearn": "sklearn", "path": "ours, `strategy='path'` (default)",
           "grid": "ours, `strategy='grid'`"}


def _significant(value: float) -> str:
    return f"{value:.3g}"


def logistic_cv_table() -> str:
    """ServerlessLogisticRegressionCV against LogisticRegressionCV
    (docs/img/logistic-cv.json)."""
    lines = ["| problem | arm | median | range | ratio | C_ | max abs coef diff | rounds | "
             "iterations |", "|---|---|---|---|---|---|---|---|---|"]
    for problem, label in CV_PROBLEMS.items():
        for arm, name in CV_ARMS.items():
            r = _cv(problem, arm)
            ours = arm != "sklearn"
            shown = ratio(r["ratio"]) if ours else "1"
            shown = f"**{shown}**" if arm == "path" else shown
            diff = format(r["max_abs_coef_diff"], ".1e") if ours else ""
            lines.append(
                f"| {label if arm == 'sklearn' else ''} | {name} | {r['median_s']:.2f} s | "
                f"{r['min_s']:.2f}-{r['max_s']:.2f} | {shown} | {_significant(r['C_'])} | "
                f"{diff} | {r.get('n_rounds', '') if ours else ''} | {r['n_iter_sum']} |")
    return "\n".join(lines)


def kmeans_n_init_table() -> str:
    """k-means' ten initialisations in lockstep (docs/img/kmeans-n-init.json)."""
    result = load("kmeans-n-init")
    lines = ["| arm | median (range) | ratio | rounds |", "|---|---|---|---|",
             f"| scikit-learn `KMeans` | {_timed(result['sklearn'], _seconds)} | 1 | |",
             f"| `ServerlessKMeans` | {_timed(result['ours'], _seconds)} | "
             f"**{ratio(result['ratio'])}** | {result['n_rounds']} "
             f"(of {sum(result['iterations_per_run'])} iterations in all) |"]
    return "\n".join(lines)


#: file -> its tables: (opening marker line, closing marker line, renderer).
TABLES: dict[str, tuple[tuple[str, str, Callable[[], str]], ...]] = {
    "README.md": ((f"<!-- {BEGIN} -->", f"<!-- {END} -->", markdown_table),),
    "docs/benchmarks.md": ((f"<!-- {BEGIN} -->", f"<!-- {END} -->", glance_table),
                           (f"<!-- {COLD} -->", f"<!-- {END} -->", cold_table),
                           ("<!-- figures:search-dataset -->", f"<!-- {END} -->", search_table),
                           ("<!-- figures:pipeline -->", f"<!-- {END} -->", pipeline_table),
                           ("<!-- figures:fixed-cost -->", f"<!-- {END} -->", fixed_cost_table),
                           ("<!-- figures:kmeans-fits -->", f"<!-- {END} -->", kmeans_table),
                           ("<!-- figures:logistic-cv -->", f"<!-- {END} -->", logistic_cv_table),
                           ("<!-- figures:kmeans-n-init -->", f"<!-- {END} -->",
                            kmeans_n_init_table)),
    "docs/index.rst": ((f".. {BEGIN}", f".. {END}", rst_table),),
}

#: Figures quoted in prose: (file, the text around the figure with ``{}`` in its place,
#: the figure's name). The text is matched with line breaks read as spaces.
QUOTED: tuple[tuple[str, str, str], ...] = (
    ("README.md", "a small fit takes {} on the pool of workers", "small-logistic-pool"),
    ("docs/user_guide/model_selection.rst", "scikit-learn's time with ``n_jobs=2``: {}",
     "cv-large-path"),
    ("docs/user_guide/model_selection.rst", "the grid's {}", "cv-large-grid"),
    ("docs/user_guide/model_selection.rst", "path needs {} iterations", "cv-large-path-iterations"),
    ("docs/user_guide/model_selection.rst", "iterations in {} rounds", "cv-large-path-rounds"),
    ("docs/user_guide/model_selection.rst", "against the grid's {} in", "cv-large-grid-iterations"),
    ("docs/user_guide/model_selection.rst", "in {}, and the two take", "cv-large-grid-rounds"),
    ("docs/user_guide/model_selection.rst", "milliseconds ({} against", "cv-small-grid"),
    ("docs/user_guide/model_selection.rst", "against {}). The", "cv-small-path"),
    ("docs/user_guide/model_selection.rst", "5 folds on breast_cancer took {} scikit-learn's",
     "grid-search-pool"),
    ("docs/user_guide/differences.rst", "A small fit takes {} on the pool of workers",
     "small-logistic-pool"),
    ("docs/user_guide/differences.rst", "{} when it starts its own map", "small-logistic-no-pool"),
    ("docs/user_guide/differences.rst", "``GridSearchCV`` over 21 small fits is {}",
     "grid-search-pool"),
    ("README.md", "its numpy kernel, with the same models, in {} of", "kmeans-numpy-300k-10"),
    ("README.md", "time at 300,000 x 10 and {} at 300,000 x 50", "kmeans-numpy-300k-50"),
    ("docs/benchmarks.md", "lbfgs, binary, 300,000 x 50, 2 workers: **{}** scikit-learn",
     "lbfgs-300k"),
    ("README.md", "(compiled: {} and", "kmeans-300k-10"),
    ("README.md", "and {}; `docs/benchmarks.md`, \"k-means speed\"", "kmeans-300k-50"),
    ("docs/user_guide/pool.rst", "logistic regression took {} with a pool", "small-logistic-pool"),
    ("docs/user_guide/pool.rst", "with a pool and {} without, k-means", "small-logistic-no-pool"),
    ("docs/user_guide/pool.rst", "k-means {} with a pool", "small-kmeans-pool"),
    ("docs/user_guide/pool.rst", "with a pool and {} without; GridSearchCV",
     "small-kmeans-no-pool"),
    ("docs/user_guide/pool.rst", "breast_cancer took {} scikit-learn's time", "grid-search-pool"),
    ("docs/user_guide/choosing.rst", "with 2 workers took {} on the pool of workers",
     "small-logistic-pool"),
    ("docs/user_guide/choosing.rst", "and {} when it starts its own map", "small-logistic-no-pool"),
    ("docs/user_guide/choosing.rst", "where scikit-learn takes {};", "small-logistic-sklearn"),
    ("docs/user_guide/choosing.rst", "fits faster than scikit-learn ({})", "lbfgs-300k"),
    ("docs/user_guide/choosing.rst", "k-means fits in {} of scikit-learn's", "kmeans-300k-50"),
    ("docs/user_guide/choosing.rst", "an empty map costs about {}", "empty-map"),
)


def _block(text: str, begin: str, end: str, path: str) -> tuple[int, int]:
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < start:
        raise ValueError(f"{path}: the markers {begin!r} ... {end!r} are missing")
    return start + len(begin), stop


def rendered(path: str) -> str:
    """``path`` with its tables rendered from the JSON files."""
    text = (ROOT / path).read_text(encoding="utf-8")
    for begin, end, render in TABLES[path]:
        start, stop = _block(text, begin, end, path)
        text = text[:start] + "\n\n" + render() + "\n\n" + text[stop:]
    return text


def stale() -> list[str]:
    """Every table and quoted figure that disagrees with its result file."""
    problems = []
    for path in TABLES:
        if rendered(path) != (ROOT / path).read_text(encoding="utf-8"):
            problems.append(f"{path}: the table differs from docs/img/*.json "
                            "(python docs/_figures.py rewrites it)")
    for path, text, name in QUOTED:
        page = " ".join((ROOT / path).read_text(encoding="utf-8").split())
        quoted = text.format(figure(name))
        if quoted not in page:
            problems.append(f"{path}: expected {quoted!r} (docs/img/{FIGURES[name][0]}.json)")
    return problems


def main(argv: list[str]) -> int:
    if "--check" not in argv:
        for path in TABLES:
            (ROOT / path).write_text(rendered(path), encoding="utf-8")
    problems = stale()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
