"""micon_tasks refuses an environment where a sibling package name (adapters, registry, dar) resolves to
someone else's package, e.g. AdapterHub's ``adapters`` first on the path (issue 10, item 6)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = str(Path(__file__).resolve().parents[1])


@pytest.fixture
def foreign(tmp_path):
    for name in ("adapters", "dar"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("FOREIGN = True\n")
    return tmp_path


def _run(args, pythonpath):
    env = {**os.environ, "PYTHONPATH": pythonpath}
    cwd = pythonpath.split(":")[0]  # `python -m` / `-c` put the current folder first on the path: not the checkout
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=120, cwd=cwd)


@pytest.mark.parametrize("name", ["adapters", "dar"])
def test_a_foreign_sibling_package_stops_the_cli_in_one_line(foreign, name):
    other = "dar" if name == "adapters" else "adapters"
    (foreign / other / "__init__.py").unlink()
    (foreign / other).rmdir()
    out = _run(["-m", "micon_tasks", "ls", "tasks"], f"{foreign}:{REPO}")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("micon: error:"), out.stderr
    assert str(foreign / name / "__init__.py") in lines[0] and "uninstall" in lines[0]


def test_a_foreign_package_stops_the_library_import(foreign):
    code = "import micon_tasks"
    out = _run(["-c", code], f"{foreign}:{REPO}")
    assert out.returncode != 0 and "resolves to" in out.stderr and str(foreign) in out.stderr
    code = ("try:\n import micon_tasks\nexcept ImportError as e:\n"
            " print(type(e).__name__, 'adapters' in str(e))")
    out = _run(["-c", code], f"{foreign}:{REPO}")
    assert out.stdout.strip() == "EnvironmentClashError True", out.stderr


def test_our_own_layout_passes():
    out = _run(["-c", "import micon_tasks, adapters, dar, registry; print('ok')"], REPO)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
