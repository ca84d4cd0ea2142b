"""The figures the README and the documentation quote agree with the benchmark
results they come from (docs/img/*.json): the "How fast" tables are rendered
from them by docs/_figures.py, and every figure quoted in prose is listed there
with its source."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("_figures", os.path.join(ROOT, "docs",
                                                                        "_figures.py"))
figures = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("_figures", figures)  # for its dataclass
_spec.loader.exec_module(figures)


@pytest.mark.parametrize("path", sorted(figures.TABLES))
def test_tables_are_rendered_from_the_results(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as file:
        text = file.read()
    assert figures.rendered(path) == text, (
        f"{path}: its table disagrees with docs/img/*.json; run python docs/_figures.py")
    for row in figures.ROWS:  # every row is on the page, with its figure
        assert row.figure() in text


@pytest.mark.parametrize("path, text, name", figures.QUOTED,
                         ids=[f"{path}:{name}" for path, _, name in figures.QUOTED])
def test_quoted_figures_agree_with_the_results(path, text, name):
    with open(os.path.join(ROOT, path), encoding="utf-8") as file:
        page = " ".join(file.read().split())
    assert text.format(figures.figure(name)) in page


def test_figures_read_their_files():
    # Each figure comes from the file it names, read afresh: a changed result changes it.
    for name, (source, _) in figures.FIGURES.items():
        assert os.path.exists(os.path.join(ROOT, "docs", "img", f"{source}.json")), name
    ratio = json.load(open(os.path.join(ROOT, "docs", "img", "logistic-300k.json"),
                           encoding="utf-8"))["results"][0]["ratio"]
    assert figures.figure("lbfgs-300k") == f"{ratio:.2f}x"
    assert figures.ratio(0.4615) == "0.46x" and figures.ratio(5.2255) == "5.2x"
    assert figures.ratio_range([0.0326, 0.0513]) == "0.03-0.05x"
    assert figures.ms(0.0177) == "18 ms" and figures.ms(0.0032) == "3.2 ms"


def test_a_stale_table_is_found(tmp_path, monkeypatch):
    # A page whose table was edited by hand is reported, not silently accepted.
    for path in figures.TABLES:
        os.makedirs(tmp_path / os.path.dirname(path), exist_ok=True)
        (tmp_path / path).write_text(figures.rendered(path).replace(
            figures.figure("lbfgs-300k"), "0.01x"), encoding="utf-8")
    for path, _, _ in figures.QUOTED:
        if not (tmp_path / path).exists():
            os.makedirs(tmp_path / os.path.dirname(path), exist_ok=True)
            (tmp_path / path).write_text(open(os.path.join(ROOT, path)).read())
    monkeypatch.setattr(figures, "ROOT", tmp_path)
    problems = figures.stale()
    # Every page's table is reported (a prose quote of the same figure may be too).
    tables = [p.split(":")[0] for p in problems if "the table differs" in p]
    assert sorted(tables) == sorted(figures.TABLES)
    assert {p.split(":")[0] for p in problems} == set(figures.TABLES)
