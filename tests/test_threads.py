"""--threads on every command that runs a model; the Python API never changes the caller's torch threads."""

import re
from pathlib import Path

import pytest
import torch

from bitmark.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
MODEL_COMMANDS = {"detect": ["--key", "k", "x.png"], "scan": ["--key", "k", "d", "--out", "m.jsonl"],
                  "generate": ["--out", "o"], "demo": [], "attack": ["jpeg:50", "x.png", "--out", "o"],
                  "bench": ["speed"], "collapse": ["--out", "o"], "train": ["tokenizer", "--data", "photos"]}


@pytest.mark.parametrize("command", sorted(MODEL_COMMANDS))
def test_every_model_command_takes_threads_default_one(command):
    parser = build_parser()
    assert parser.parse_args([command, *MODEL_COMMANDS[command]]).threads == 1
    assert parser.parse_args([command, *MODEL_COMMANDS[command], "--threads", "2"]).threads == 2
    with pytest.raises(SystemExit) as e:
        parser.parse_args([command, *MODEL_COMMANDS[command], "--threads", "0"])
    assert e.value.code == 2


def test_the_command_applies_threads(tmp_path):
    before = torch.get_num_threads()
    try:
        key = tmp_path / "k.json"
        assert main(["keygen", "--out", str(key)]) == 0
        assert main(["generate", "--key", str(key), "--num", "1", "--out", str(tmp_path / "o"), "--threads", "2"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_library_code_never_sets_torch_threads():
    # the speed bench restores them; a Ray actor is its own process, sized by --cpus-per-worker
    allowed = {"bitmark/cli/common.py", "benchmarks/speed.py", "benchmarks/speed_e2e.py", "detectors/scan_ray.py"}
    offenders = []
    for folder in ("bitmark", "detectors", "attacks", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in allowed and re.search(r"set_num_threads\(", path.read_text()):
                offenders.append(rel)
    assert not offenders
