"""Benchmark suite of sklearn-serverless.

    python benchmarks/run.py --quick            # small sizes, < 3 minutes on 2 cores
    python benchmarks/run.py --full             # the issue's sizes (1M x 50)
    python benchmarks/run.py --only paper,locking --repeat 3 --out /tmp/results

Each experiment writes ``NAME.json`` (raw measurements, machine description,
versions, parameters, quotable ratios and targets) and ``NAME.png`` under
``--out`` (default ``benchmarks/results/``). Experiments: see ``EXPERIMENTS``.
Scaling on a bigger machine (experiment 5), e.g. 16 cores::

    python benchmarks/run.py --full --only speedup,cost --max-workers 16 \\
        --n-samples 8000000 --n-features 50 --n-clusters 50
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import exp_cost  # noqa: E402 - the benchmarks folder is not a package
import exp_locking  # noqa: E402
import exp_paper  # noqa: E402
import exp_rounds  # noqa: E402
import exp_serverful  # noqa: E402
import exp_speedup  # noqa: E402
from _common import FULL, QUICK, Config, machine, preload, write_json  # noqa: E402

#: name -> module with ``TITLE``, ``run(cfg) -> dict`` and ``plot(payload, path)``.
EXPERIMENTS = {
    "speedup": exp_speedup,      # 1 (and 5 with --max-workers / sizes)
    "serverful": exp_serverful,  # 2
    "locking": exp_locking,      # 3
    "rounds": exp_rounds,        # 4
    "cost": exp_cost,            # 6 (prices the speedup experiment's fits)
    "paper": exp_paper,          # the paper's design as a baseline
}
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v.strip())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (default)")
    size.add_argument("--full", action="store_true", help="the issue's sizes (1M x 50)")
    parser.add_argument("--only", default="",
                        help=f"comma-separated experiments among {', '.join(EXPERIMENTS)}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--repeat", type=int,
                        help="timed runs per measurement, median (default 2 quick, 5 full; "
                             "the locking experiment's fits: 1 quick, 3 full)")
    parser.add_argument("--max-workers", type=int, help="most workers (default: cores)")
    parser.add_argument("--n-samples", type=int, help="rows of the speed experiments")
    parser.add_argument("--n-features", type=int, help="columns of the speed experiments")
    parser.add_argument("--n-clusters", type=int, help="k of the speed experiments")
    parser.add_argument("--round-trip-ms", type=_floats,
                        help="cloud round trips to project, in ms (default 5,30)")
    parser.add_argument("--lambda-memory-mb", type=int,
                        help="Lambda memory per worker (default 1769: one vCPU)")
    parser.add_argument("--price-per-gb-s", type=float,
                        help="default: AWS Lambda x86, $0.0000166667")
    parser.add_argument("--price-per-request", type=float,
                        help="default: AWS Lambda, $0.20 per 1M requests")
    parser.add_argument("--experiment-timeout", type=int,
                        help="seconds before an experiment is abandoned (default 600 quick, "
                             "3600 full; 0: never)")
    return parser.parse_args(argv)


def config(args: argparse.Namespace) -> Config:
    """The preset, overridden by every option given."""
    base = FULL if args.full else QUICK
    overrides = {
        field: getattr(args, field)
        for field in ("repeat", "max_workers", "n_samples", "n_features", "n_clusters",
                      "round_trip_ms", "lambda_memory_mb", "price_per_gb_s",
                      "price_per_request")
        if getattr(args, field) is not None
    }
    return dataclasses.replace(base, **overrides)


def selected(only: str) -> list[str]:
    names = [n.strip() for n in only.split(",") if n.strip()] or list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise SystemExit(f"unknown experiments {unknown}; choose among {list(EXPERIMENTS)}")
    return names


def run_one(name: str, cfg: Config, out: Path, host: dict, timeout: int = 0) -> dict:
    """Run, save JSON and PNG; a failure is recorded in the JSON, not raised.
    A hung fit must not hang the suite: past ``timeout`` seconds (0: none) the
    experiment is interrupted with SIGINT (Lithops' wait cancels any SIGALRM),
    and its context managers release what it held."""
    module = EXPERIMENTS[name]
    started = time.perf_counter()
    payload = {"experiment": name, "title": module.TITLE, "description": module.__doc__,
               "mode": cfg.mode, "config": cfg.as_dict(), "machine": host}
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(timeout, interrupt) if timeout else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        payload.update(module.run(cfg))
    except KeyboardInterrupt:
        if not fired.is_set():
            raise
        payload["error"] = (f"timed out after {timeout} s (--experiment-timeout)\n"
                            + traceback.format_exc())
    except Exception:  # noqa: BLE001 - one failed experiment must not stop the suite
        payload["error"] = traceback.format_exc()
    finally:
        if timer is not None:
            timer.cancel()
    payload["seconds"] = time.perf_counter() - started
    write_json(out / f"{name}.json", payload)
    if "error" not in payload:
        try:
            module.plot(payload, out / f"{name}.png")
        except Exception:  # noqa: BLE001
            payload["plot_error"] = traceback.format_exc()
            write_json(out / f"{name}.json", payload)
    return payload


def report(payload: dict) -> None:
    name = payload["experiment"]
    print(f"== {name}: {payload['seconds']:.1f} s", flush=True)
    for key in ("error", "plot_error"):
        if key in payload:
            print(payload[key], file=sys.stderr)
    for reason in payload.get("skipped", []):
        print(f"   skipped: {reason}")
    for key, value in payload.get("ratios", {}).items():
        print(f"   {key}: {value:.3g}" if isinstance(value, float) else f"   {key}: {value}")
    for t in payload.get("targets", []):
        value = "n/a" if t["value"] is None else f"{t['value']:.3g}"
        mark = {True: "MET", False: "NOT MET", None: "n/a"}[t["met"]]
        sign = "<=" if t["better"] == "lower" else ">="
        print(f"   target {t['name']}: {value} ({sign} {t['limit']:g}) {mark}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = config(args)
    names = selected(args.only)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    started = time.perf_counter()
    host = machine()
    print(f"{cfg.mode} run of {names} into {args.out} on {host['cores']} cores "
          f"({host['cpu_model']}), load {host['load_average'][0]:.2f}", flush=True)
    try:
        preload()
    except Exception as exc:  # noqa: BLE001 - each experiment will report its own failure
        print(f"warm-up fit failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    failed = []
    timeout = args.experiment_timeout
    if timeout is None:
        timeout = 3600 if args.full else 600
    for name in names:
        payload = run_one(name, cfg, args.out, host, timeout)
        report(payload)
        if "error" in payload:
            failed.append(name)
    print(f"done in {time.perf_counter() - started:.1f} s; results in {args.out}")
    if failed:
        print(f"FAILED: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
