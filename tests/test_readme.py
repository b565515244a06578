"""Every code block of README.md runs as written: Python blocks are executed; in bash blocks, every `bitmark`
command line is parsed by the real parser, every `make` target exists and every `pip install` names real extras.

Parsing needs no model or checkpoint, so no command line is skipped (lines for Infinity parse too). The Python
that needs Infinity and its checkpoints stands in a `text` block that says so on its first line: it is compiled,
not run, so that pasting all the Python blocks into one session runs clean here.
"""

import re
import shlex
from pathlib import Path

import pytest

from bitmark.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)
NEEDS_INFINITY = "# needs Infinity"
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
INFINITY = [code for lang, code in BLOCKS if lang == "text"]


def bash_lines() -> list[str]:
    """The bash blocks' command lines: continuations joined, `NAME="..."` assignments expanded where used."""
    lines, names = [], {}
    for lang, code in BLOCKS:
        if lang != "bash":
            continue
        for line in code.replace("\\\n", " ").splitlines():
            line = line.strip()
            assignment = re.fullmatch(r'(\w+)="([^"]*)"', line)
            if assignment:
                names[assignment[1]] = " ".join(assignment[2].split())
            elif line and not line.startswith("#"):
                lines.append(re.sub(r"\$(\w+)", lambda m: names.get(m[1], m[0]), line))
    return lines


LINES = bash_lines()


def test_the_readme_has_the_blocks_these_tests_read():  # so that the tests below cannot pass on nothing
    assert len(PYTHON) >= 1 and len(INFINITY) == 1 and all(code.startswith(NEEDS_INFINITY) for code in INFINITY)
    assert sum(line.startswith("bitmark ") for line in LINES) >= 10
    assert {lang for lang, _ in BLOCKS} <= {"python", "bash", "text"}, "a code block in a language this test does not run"


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs(index, tmp_path, monkeypatch, capsys):
    code = PYTHON[index]
    monkeypatch.chdir(tmp_path)  # whatever a block writes stays out of the repository
    exec(compile(code, f"README.md, python block {index}", "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out  # the blocks print what they show


@pytest.mark.parametrize("index", range(len(INFINITY)))
def test_infinity_block_is_valid_python(index):
    """It needs FoundationVision/Infinity and checkpoints that bitmark neither ships nor downloads, so it is
    compiled only; tests/test_infinity_adapter.py runs the same calls against a stand-in."""
    compile(INFINITY[index], f"README.md, Infinity block {index}", "exec")


@pytest.mark.parametrize("line", LINES, ids=[line.split("#")[0].strip()[:50] for line in LINES])
def test_bash_line_is_a_valid_command(line):
    argv = shlex.split(line, comments=True)
    if argv[0] == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
        assert argv[1] in targets, f"make target {argv[1]!r} is not in the Makefile ({targets})"
        return
    if argv[:2] == ["pip", "install"]:  # the extras it names must exist
        import tomllib

        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        named = [e for a in argv[2:] for e in re.findall(r"\[([\w,]+)\]", a) for e in e.split(",")]
        assert named and set(named) <= set(extras), f"{line}: extras {named}, pyproject has {sorted(extras)}"
        return
    assert argv[0] == "bitmark", f"README command {line!r} is neither bitmark nor make"
    brackets = [a for a in argv if a.startswith("[") or a.endswith("]")]
    assert not brackets, f"usage brackets {brackets} would be passed as arguments when the line is copied: {line}"
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit as e:
        pytest.fail(f"README command does not parse (exit {e.code}): {line}")
    assert callable(args.func)
