"""The layout (DESIGN §3): one import namespace, and imports that only go down the layers.

Every module's imports, function-level ones included, are read with `ast`; an import of a room that its
own room may not use fails the test with the file and line.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"bitmark": "bitmark", "detectors": "bitmark.detectors", "attacks": "bitmark.attacks", "benchmarks": "bitmark.benchmarks"}

# room -> the rooms it may import (its own included). Bottom to top.
BELOW = {
    "core": {"core"},
    "io": {"core", "io"},
    "models": {"core", "io", "models"},
    "adapters": {"core", "io", "models", "adapters"},
    "backends": {"core", "io", "models", "adapters", "backends"},
    "detectors": {"core", "io", "models", "adapters", "detectors"},
    "attacks": {"core", "io", "models", "attacks"},
    "evaluation": {"core", "io", "models", "adapters", "backends", "detectors", "attacks", "evaluation"},
    "training": {"core", "io", "models", "adapters", "backends", "detectors", "attacks", "evaluation", "training"},
    "benchmarks": {"core", "io", "models", "adapters", "backends", "detectors", "attacks", "evaluation", "training", "benchmarks"},
    "cli": {"core", "io", "models", "adapters", "backends", "detectors", "attacks", "evaluation", "training", "benchmarks", "cli"},
}


def room(module: str) -> str:
    """`bitmark.core.keys` -> core; `bitmark.detectors.scan` -> detectors; `bitmark` itself -> core."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "bitmark":
        return "core"
    return "cli" if parts[1] == "__main__" else parts[1]


def modules():
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts]) if parts else package
            if folder == "bitmark" and parts and f"bitmark.{parts[0]}" in FOLDERS.values():
                continue
            yield path, name


def imported(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno
            if node.module == "bitmark":  # `from bitmark import attacks` names a room
                yield from ((f"bitmark.{a.name}", node.lineno) for a in node.names if f"bitmark.{a.name}" in FOLDERS.values()
                            or (ROOT / "bitmark" / a.name).is_dir())


def test_every_room_is_known():
    rooms = {room(name) for _, name in modules()}
    assert rooms <= set(BELOW), rooms - set(BELOW)


def test_imports_only_go_down_the_layers():
    wrong = []
    for path, name in modules():
        mine = room(name)
        for target, line in imported(path):
            top = target.split(".")[0]
            if top in ("detectors", "attacks", "benchmarks"):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports top-level {target!r}; use bitmark.{target}")
            elif top == "bitmark" and target != "bitmark" and room(target) not in BELOW[mine]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {mine} imports {target} ({room(target)} is above it)")
    assert not wrong, "\n".join(wrong)


def test_tests_import_only_the_bitmark_namespace():
    wrong = [f"{p.name}:{line} imports {t}" for p in (ROOT / "tests").glob("test_*.py") for t, line in imported(p)
             if t.split(".")[0] in ("detectors", "attacks", "benchmarks")]
    assert not wrong, wrong


def test_the_bitmark_package_itself_stands_on_the_core_only():
    """`bitmark/__init__` names core objects and loads them on first use."""
    assert {room(t) for t, _ in imported(ROOT / "bitmark" / "__init__.py") if t.startswith("bitmark.")} <= {"core"}


def heavy_modules_loaded_by(argv: list[str]) -> list[str]:
    """Run `bitmark ARGV` in a fresh interpreter; the heavy modules it had imported when it finished."""
    code = ("import sys\nfrom bitmark.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "print('HEAVY=' + ','.join(m for m in ('torch', 'scipy.stats', 'numpy') if m in sys.modules))" % argv)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return [m for m in out.rsplit("HEAVY=", 1)[1].strip().split(",") if m]


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["keygen", "--help"], ["detect", "--help"], ["bench", "--help"],
                                  ["scan", "--help"], ["generate", "--help"], ["attack", "--help"], ["train", "--help"],
                                  ["demo", "--help"], ["collapse", "--help"], ["bench", "robustness", "--help"],
                                  ["bench", "speed", "--help"], ["bench", "radioactivity", "--help"],
                                  ["detect"], ["bench", "speed", "--keys", "3"]])  # the last two: argument errors
def test_help_and_argument_errors_import_nothing_heavy(argv):
    assert heavy_modules_loaded_by(argv) == []


def test_keygen_imports_neither_torch_nor_scipy_stats(tmp_path):
    assert heavy_modules_loaded_by(["keygen", "--out", str(tmp_path / "k.json")]) == []
