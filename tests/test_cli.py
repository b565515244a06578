import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from bitmark import WatermarkKey, WatermarkSampler, save_pyramid
from bitmark.benchmarks.null_calibration import sample_pyramid
from bitmark.cli import main


@pytest.fixture
def key_file(tmp_path):
    assert main(["keygen", "--out", str(tmp_path / "key.json"), "--json"]) == 0
    return tmp_path / "key.json"


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_keygen(tmp_path, capsys):
    path = tmp_path / "k.json"
    assert main(["keygen", "--out", str(path), "--context", "3", "--scales", "2,3", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = WatermarkKey.load(path)
    assert info["key_id"] == key.key_id and key.config.context == 3 and key.config.scales == (2, 3)
    assert main(["keygen", "--out", str(path)]) == 2  # never overwrites a key
    assert main(["keygen", "--out", str(tmp_path / "x.json"), "--context", "12"]) == 2


def test_detect_rows_and_exit_codes(tmp_path, key_file, capsys):
    key = WatermarkKey.load(key_file)
    save_pyramid(tmp_path / "marked.safetensors", sample_pyramid(WatermarkSampler(key), 2, seed=0))
    save_pyramid(tmp_path / "marked.npz", sample_pyramid(WatermarkSampler(key), 1, seed=1))
    (tmp_path / "broken.safetensors").write_bytes(b"\x00garbage")
    inputs = [str(tmp_path / n) for n in ("marked.safetensors", "broken.safetensors", "marked.npz")]
    capsys.readouterr()
    assert main(["detect", "--key", str(key_file), "--json", *inputs]) == 1
    rows = _json_lines(capsys.readouterr().out)
    assert [r["path"] for r in rows] == [inputs[0], inputs[0], inputs[1], inputs[2]]
    assert "error" in rows[2] and "cannot read" in rows[2]["error"]
    good = [r for r in rows if "error" not in r]
    assert all(r["is_watermarked"] and r["z_score"] > 10 for r in good)
    for field in ("z_score", "p_value", "neg_log10_p", "num_scored", "num_green", "green_fraction", "key_id"):
        assert field in good[0]
    assert main(["detect", "--key", str(key_file), inputs[0], inputs[2]]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["path", "index", "is_watermarked"] and len(table) == 4


def test_detect_refuses_bad_keys_and_mismatches(tmp_path, key_file, capsys):
    pyr = tmp_path / "p.npz"
    save_pyramid(pyr, sample_pyramid(WatermarkSampler(WatermarkKey.load(key_file)), 1, seed=0))
    assert main(["detect", "--key", str(key_file), "--context", "4", str(pyr)]) == 2
    assert "context" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    assert main(["detect", "--key", str(tmp_path / "bad.json"), str(pyr)]) == 2
    assert main(["detect", "--key", str(key_file), "--fpr", "1.5", str(pyr)]) == 2
    with pytest.raises(SystemExit) as e:
        main(["detect", str(pyr)])  # no --key: a usage error
    assert e.value.code == 2


def test_demo_from_png_files(tmp_path, capsys):
    from bitmark.evaluation.keys import fixed_key

    key_path = fixed_key(3).save(tmp_path / "k.json")
    assert main(["demo", "--out", str(tmp_path / "demo"), "--num", "8", "--key", str(key_path), "--json"]) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert len(rows) == 16 and (tmp_path / "demo" / "demo-grid.png").exists()
    marked = [r["z_score"] for r in rows if r["watermarked"]]
    clean = [r["z_score"] for r in rows if not r["watermarked"]]
    assert min(marked) > max(clean) and not any(r["is_watermarked"] for r in rows if not r["watermarked"])
    assert main(["detect", "--key", str(key_path), str(tmp_path / "demo" / "clean-00.png")]) == 0


def test_console_script_runs_as_a_module(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "bitmark.cli", "keygen", "--out", str(tmp_path / "k.json")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "wrote key" in out.stdout


def test_bench_speed_smoke(capsys):
    assert main(["bench", "speed", "--repeats", "1", "--quick", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["sampler"]["batch8"]["ratio"]["median"] > 0
    assert r["detector"]["batch4"]["self-normalised"]["Mbits_per_s"]["median"] > 0


def test_attack_command(tmp_path, capsys):
    from bitmark.io.images import load_image, save_png

    assert main(["attack", "--list", "--json"]) == 0
    listed = {r["name"]: r for r in _json_lines(capsys.readouterr().out)}
    assert listed["jpeg"]["range"] == [10.0, 100.0] and listed["crop"]["neutral"] == 1.0
    src = tmp_path / "in"
    src.mkdir()
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    save_png(src / "a.png", img)
    (src / "b.png").write_text("not an image")
    assert main(["attack", "hflip:1", str(src), "--out", str(tmp_path / "out"), "--json"]) == 1
    rows = _json_lines(capsys.readouterr().out)
    assert [("error" in r) for r in rows] == [False, True]
    assert np.array_equal(load_image(tmp_path / "out" / "a.png"), img[:, ::-1])
    assert len((tmp_path / "out" / "attacks.jsonl").read_text().splitlines()) == 2
    assert main(["attack", "jpg:50", str(src), "--out", str(tmp_path / "o2")]) == 2


def test_white_box_attack_from_the_command_line(tmp_path, key_file, capsys):
    """forge with the key's oracle turns a clean sample into one the detector flags."""
    assert main(["generate", "--no-watermark", "--num", "2", "--out", str(tmp_path / "clean")]) == 0
    assert main(["attack", "forge:1", str(tmp_path / "clean"), "--out", str(tmp_path / "forged")]) == 2
    assert "oracle" in capsys.readouterr().err
    assert main(["attack", "forge:1", str(tmp_path / "clean"), "--key", str(key_file), "--out", str(tmp_path / "forged")]) == 0
    capsys.readouterr()
    assert main(["detect", "--key", str(key_file), str(tmp_path / "forged"), "--json"]) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert [r["path"] for r in rows if "skipped" in r] == [str(tmp_path / "forged" / "attacks.jsonl")]
    assert all(r["is_watermarked"] for r in rows if "skipped" not in r) and len(rows) == 3


def test_detect_with_infinity_encoder_needs_a_vae(tmp_path, key_file, capsys):
    from bitmark.io.images import save_png

    save_png(tmp_path / "a.png", np.zeros((32, 32, 3), np.uint8))
    assert main(["detect", "--key", str(key_file), "--encoder", "infinity", str(tmp_path)]) == 2
    assert "--vae PATH" in capsys.readouterr().err
