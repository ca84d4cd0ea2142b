"""Sphinx configuration of the sklearn-serverless documentation.

Built by ``make docs`` with warnings as errors (``-W --keep-going``) and
nitpicky references: a reference to one of our own objects that does not
resolve fails the build. External objects (Python, NumPy, scikit-learn,
Lithops) are not linked: the build must work offline, so no intersphinx.
"""

import os
import re
import sys

import sklearn_serverless

sys.path.insert(0, os.path.dirname(__file__))  # _ordering, the gallery's order

project = "sklearn-serverless"
author = "the sklearn-serverless authors"
copyright = "2026, " + author
release = version = sklearn_serverless.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_templates", "examples/*.rst", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]
root_doc = "index"

# API reference: one page per public object, generated from the objects
# themselves (so new parameters appear without editing these sources).
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": False, "inherited-members": False}
autodoc_typehints = "none"

# numpydoc: every public docstring of the package is validated at build
# time, with every check except these (which they do not pass):
# ES01/SA01/EX01: methods without an extended summary, See Also or Examples
# (sections they do not have); RT02: "self : object", scikit-learn's style
# of Returns; SS05: "Distances of each sample..." (transform's summary).
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = {"all", "ES01", "SA01", "EX01", "RT02", "SS05"}
# Two one-line docstrings that document no parameters (package code, to be
# fixed there: "Fit, then return labels_; see fit."). Methods inherited from
# scikit-learn are listed by name only, not rendered or validated here.
numpydoc_validation_exclude = {
    r"\.ServerlessKMeans\.fit_predict$",
    r"\.ServerlessKMeans\.fit_transform$",
}

# Nitpicky: every reference must resolve, except to objects documented
# elsewhere (we cannot link them offline).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(sklearn|numpy|np|scipy|lithops|redis|matplotlib)(\..*)?"),
    (r"py:.*", r"(TimeoutError|ConnectionError|RuntimeError|ValueError|KeyboardInterrupt)"),
    (r"py:.*", r"(dict|str|int|float|bool|object|None|list|tuple|callable)"),
]

# The gallery: examples run at build time, on small data, with 2 workers.
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "matplotlib_animations": False,
    "reference_url": {"sklearn_serverless": None},
    "doc_module": ("sklearn_serverless",),
    "backreferences_dir": "generated/backreferences",
    "within_subsection_order": "_ordering.ExampleOrder",
}
os.environ.setdefault("MPLBACKEND", "Agg")

# Markdown (docs/benchmarks.md is rendered as it is).
myst_heading_anchors = 3

html_theme = "pydata_sphinx_theme"
html_title = "sklearn-serverless"
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": True,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False
# API pages: the estimators' signatures are long; one parameter per line,
# and a stylesheet that wraps long names instead of clipping them.
maximum_signature_line_length = 88
html_static_path = ["_static"]
html_css_files = ["api.css"]



def _check_api_reference():
    """Every public object must have its page: api.rst lists ``__all__``."""

    with open(os.path.join(os.path.dirname(__file__), "api.rst")) as file:
        listed = set(re.findall(r"^   (\w+)$", file.read(), flags=re.MULTILINE))
    missing = set(sklearn_serverless.__all__) - listed
    if missing:
        raise RuntimeError(f"docs/api.rst does not list {sorted(missing)} of __all__")


_check_api_reference()
