"""The README's examples, and those of the user guide's pages listed in
``PAGES``, run as written.

Every fenced ``python`` block of README.md (and every ``.. code-block::
python`` of a listed page) is run, each in a fresh namespace (as a user
pastes one), in a subprocess of its own. A README block is skipped only when
the line before its opening fence is the marker

    <!-- readme-test: needs a cloud account -->

(an HTML comment: GitHub shows nothing). The only change made to a block is
its fixed loopback ports (5055 for moto's S3 server, 6399 for redis-server),
replaced by free ones so that the test cannot collide with other servers.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import _free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
#: User guide pages whose python code blocks run here (the others need a cloud).
PAGES = ("docs/user_guide/datasets.rst",)
MARKER = "<!-- readme-test: needs a cloud account -->"
_FENCE = re.compile(r"^( *)```python\n(.*?)^\1```", re.MULTILINE | re.DOTALL)
_RST_BLOCK = re.compile(r"^\.\. code-block:: python\n\n((?:(?: {3}.*)?\n)+)", re.MULTILINE)


def readme_blocks() -> list[tuple[str, str, bool]]:
    """``(where, code, needs_cloud)`` of each python block, in README order,
    then the listed pages' blocks."""
    with open(README) as file:
        text = file.read()
    blocks = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        indent = len(match.group(1))
        code = "\n".join(row[indent:] for row in match.group(2).splitlines())
        blocks.append((f"README.md:{line}", code, before == MARKER))
    for page in PAGES:
        with open(os.path.join(ROOT, page)) as file:
            text = file.read()
        for match in _RST_BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            code = "\n".join(row[3:] for row in match.group(1).splitlines())
            blocks.append((f"{page}:{line}", code, False))
    return blocks


BLOCKS = readme_blocks()


def test_readme_has_blocks_and_marks():
    where = [place for place, *_ in BLOCKS]
    assert any(place.startswith("README.md") for place in where)
    for page in PAGES:  # each listed page has a block that runs
        assert any(place.startswith(page) for place in where), page
    assert all("import" in code for _, code, _ in BLOCKS)


@pytest.mark.parametrize("where, code, needs_cloud", BLOCKS, ids=[w for w, *_ in BLOCKS])
def test_readme_block_runs(where, code, needs_cloud, tmp_path):
    if needs_cloud:
        pytest.skip(f"{where} is marked as needing a cloud account")
    if "redis-server" in code and shutil.which("redis-server") is None:
        from conftest import REQUIRE_REDIS

        if REQUIRE_REDIS:
            pytest.fail("redis-server is not installed (SKLEARN_SERVERLESS_REQUIRE_REDIS=1)")
        pytest.skip("redis-server is not installed")
    code = code.replace("5055", str(_free_port())).replace("6399", str(_free_port()))
    script = tmp_path / "block.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [os.path.dirname(README), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (
        f"{where} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
