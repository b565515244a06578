"""The command line as a whole: --version, a closed stdout pipe, help text with defaults on every argument,
and log records that go through tqdm (issue 16, "Commands")."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from bitmark.cli import build_parser, main
from bitmark.cli.main import parsers

ROOT = Path(__file__).resolve().parents[1]


def test_version_matches_the_package_metadata(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"bitmark {version}"


@pytest.mark.parametrize("argv", [["attack", "--list", "--json"], ["attack", "--list"]])
def test_a_closed_stdout_pipe_exits_quietly_with_141(argv):
    """`bitmark ... | head`: the reader is gone before bitmark writes. Exit 141 (128 + SIGPIPE, what the shell
    reports for cat or grep in the same place), nothing on stderr, no traceback."""
    read, write = os.pipe()
    os.close(read)
    try:
        r = subprocess.run([sys.executable, "-m", "bitmark", *argv], stdout=write, stderr=subprocess.PIPE, text=True,
                           timeout=120)
    finally:
        os.close(write)
    assert (r.returncode, r.stderr) == (141, "")


def _actions():
    for parser in parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            yield parser, action


def test_every_argument_of_every_command_has_help():
    missing = []
    for parser, action in _actions():
        if isinstance(action, argparse._SubParsersAction):
            missing += [f"{parser.prog} {c.dest}" for c in action._choices_actions if not c.help]
        elif not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing


def test_help_shows_every_default_worth_showing():
    """An option's help states its default (None and False mean 'off unless given' and are not shown)."""
    hidden = []
    for parser, action in _actions():
        if isinstance(action, argparse._SubParsersAction) or action.default in (None, False, [], argparse.SUPPRESS):
            continue
        text = parser._get_formatter()._expand_help(action)
        if str(action.default) not in text:
            hidden.append(f"{parser.prog} {'/'.join(action.option_strings)}: {text!r} (default {action.default!r})")
    assert not hidden, hidden


def test_formatted_help_says_default(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "null", "--help"])
    out = capsys.readouterr().out
    assert "(default: 5000)" in out and "(default: 8)" in out


def test_the_command_line_logs_through_tqdm(tmp_path):
    code = ("import logging\nfrom bitmark.cli import main\nmain(['keygen', '--out', %r])\n"
            "print(type(logging.getLogger().handlers[0]).__name__)" % str(tmp_path / "k.json"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "TqdmHandler"
