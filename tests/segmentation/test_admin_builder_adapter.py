"""The builder <-> definition adapter (static/admin/segmentation/definition_adapter.js), via node --test."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_definition_adapter_node_suite():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the adapter is also exercised by the browser tests")
    result = subprocess.run(
        [node, "--test", str(ROOT / "frontend" / "tests")], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
