"""Real radiographs (../shared/data): `cxrseg inspect` finds every pair with no error.

Skipped, with the reason, where the folder is absent (it never ships with the project).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrseg.cli import app

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"real data folder {DATA} is absent"),
]


@pytest.mark.parametrize(("name", "pairs"), [("montgomery", 111), ("shenzhen", 453)])
def test_inspect_real_dataset(name, pairs):
    result = CliRunner().invoke(app, ["inspect", str(DATA / name), "--json", "-"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["valid_pairs"], summary["errors"], summary["warnings"]) == (pairs, 0, 0)
    assert f"{pairs} valid pairs, 0 errors, 0 warnings" in result.stderr
