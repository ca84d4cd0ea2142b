"""``python -m sklearn_serverless demo``: the main job on the embedded default."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sklearn_serverless")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="fit both estimators beside scikit-learn's")
    demo.add_argument("--n-samples", type=int, default=200_000)
    demo.add_argument("--n-features", type=int, default=20)
    demo.add_argument("--n-workers", type=int, default=2)
    demo.add_argument("--state-store", default=None,
                      help="redis://host:port/db (default: the embedded shared-memory store)")
    args = parser.parse_args(argv)
    from ._demo import run_demo

    run_demo(args.n_samples, args.n_features, args.n_workers, args.state_store)
    return 0


if __name__ == "__main__":
    sys.exit(main())
