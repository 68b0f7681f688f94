"""The wheel carries what an installed coder needs beside its code."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_ships_prompts_config_and_the_tools_inside_coder(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("coder-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"coder/_data/prompts/system.md", "coder/_data/config.yaml"} <= names
    assert {
        "coder/cli.py",
        "coder/engine.py",
        "coder/tools/__init__.py",
        "coder/tools/workspace.py",
    } <= names
    assert not any(n.startswith("tools/") for n in names)
    assert any(n.endswith("entry_points.txt") for n in names)
    assert (REPO / "prompts/system.md").read_bytes() == zipfile.ZipFile(wheel).read(
        "coder/_data/prompts/system.md"
    )
