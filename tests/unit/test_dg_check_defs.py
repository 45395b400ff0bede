"""`dg check defs` (dagster-dg-cli) validates the code location that `make ui` serves.

`dagster definitions validate` is deprecated in favour of `dg check defs`; the project's
pyproject.toml points dg at the module workspace.yaml loads, under the same location name, and
this test (run by CI through `make test`) runs the real command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_dg_targets_the_workspace_code_location() -> None:
    dg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dg"]
    (entry,) = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"]
    module = entry["python_module"]["module_name"]
    assert dg["directory_type"] == "project"
    assert dg["project"]["code_location_target_module"] == module
    # workspace.yaml names no location: Dagster names it after the module, and so does dg here
    assert dg["project"]["code_location_name"] == entry["python_module"].get(
        "location_name", module
    )


def test_dg_check_defs_passes() -> None:
    venv = Path(sys.executable).parent.parent
    env = {**os.environ, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    done = subprocess.run(
        [str(venv / "bin" / "dg"), "check", "defs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "All definitions loaded successfully." in output, output
