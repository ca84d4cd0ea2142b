"""The README's examples run as written.

Every fenced ``python`` block of README.md is run, each in a fresh namespace
(as a user pastes one), in a subprocess of its own. A block is skipped only
when the line before its opening fence is the marker

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

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
MARKER = "<!-- readme-test: needs a cloud account -->"
_FENCE = re.compile(r"^( *)```python\n(.*?)^\1```", re.MULTILINE | re.DOTALL)


def readme_blocks() -> list[tuple[int, str, bool]]:
    """``(line, code, needs_cloud)`` of each python block, in README order."""
    with open(README) as file:
        text = file.read()
    blocks = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        indent = len(match.group(1))
        code = "\n".join(row[indent:] for row in match.group(2).splitlines())
        blocks.append((line, code, before == MARKER))
    return blocks


BLOCKS = readme_blocks()


def test_readme_has_blocks_and_marks():
    assert len(BLOCKS) >= 3
    assert any(needs_cloud for *_, needs_cloud in BLOCKS)
    assert sum(not needs_cloud for *_, needs_cloud in BLOCKS) >= 3


@pytest.mark.parametrize("line, code, needs_cloud", BLOCKS,
                         ids=[f"README.md:{line}" for line, *_ in BLOCKS])
def test_readme_block_runs(line, code, needs_cloud, tmp_path):
    if needs_cloud:
        pytest.skip(f"README.md:{line} is marked as needing a cloud account")
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
        f"README.md:{line} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
