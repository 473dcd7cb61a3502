"""The layering of DESIGN.md: flows -> tdd_priv, flows -> audits; never the other way."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (REPO / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[path.relative_to(REPO).as_posix()] = names
    return found


def test_library_never_imports_prefect_flows_or_audits() -> None:
    for module, names in _imports("tdd_priv").items():
        allowed = {"flows"} if module == "tdd_priv/cli.py" else set()
        assert not (names & ({"prefect", "flows", "audits"} - allowed)), module


def test_audits_never_import_the_library() -> None:
    for module, names in _imports("audits").items():
        assert not (names & {"tdd_priv", "flows", "prefect"}), module


def test_import_linter_contracts_hold() -> None:
    linter = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert linter, "import-linter is a dev dependency; run make setup"
    result = subprocess.run([linter], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
