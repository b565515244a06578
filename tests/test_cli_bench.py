"""`bitmark bench`: one sub-command per benchmark with only its own options, every setting checked before
a file is written or a model is loaded (issue 16, "Commands")."""

import pytest

from bitmark.cli import bench as bench_cli
from bitmark.cli import build_parser, main


@pytest.fixture
def no_models(monkeypatch):
    """Loading a model fails the test: a refused setting must be found before any model is loaded."""
    import bitmark.models

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded before the settings were checked")

    for name in ("load_generator", "load_classifier", "load_tokenizer"):
        monkeypatch.setattr(bitmark.models, name, loaded)


def test_a_flag_of_another_bench_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "speed", "--out", str(tmp_path / "x"), "--keys", "3"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "bitmark bench speed: error: unrecognized arguments: --out" in err and "--keys 3" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv", [
    ["bench", "speed"], ["bench", "speed", "--repeats", "1", "--json"], ["bench", "null"],
    ["bench", "null", "--num", "100", "--keys", "2"], ["bench", "recoverability"],
    ["bench", "robustness", "--quick", "--out", "rb/"], ["bench", "radioactivity", "--out", "radio/"],
    ["bench", "radioactivity", "--quick", "--out", "radio/", "--json"],
])
def test_the_documented_invocations_still_parse(argv):
    args = build_parser().parse_args(argv)
    assert args.func is getattr(bench_cli, f"run_{argv[1]}")


@pytest.mark.parametrize("argv", [
    ["bench", "robustness", "--quick"],  # --out is required
    ["bench", "robustness", "--out", "{tmp}/x", "--num", "0"],
    ["bench", "robustness", "--out", "{tmp}/x", "--negatives", "-5"],
    ["bench", "null", "--keys", "0"],
    ["bench", "speed", "--repeats", "two"],
    ["bench", "radioactivity", "--quick"],
])
def test_usage_errors_exit_2(tmp_path, argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([a.format(tmp=tmp_path) for a in argv])
    assert e.value.code == 2 and "error:" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("extra, message", [
    (["--attacks", "jpeg:200"], "jpeg: strength 200.0 is outside 10.0..100.0"),
    (["--attacks", "jpeg:75,jpg:50"], "unknown attack 'jpg'"),
    (["--attacks", "regen_scales:1.5"], "whole number"),
    (["--attacks", "jpeg:x"], "strength must be a number"),
    (["--attacks", "jpeg:75,jpeg:75"], "listed twice"),
    (["--attacks", " , "], "--attacks is empty"),
    (["--schemes", "nope"], "unknown schemes ['nope']"),
    (["--schemes", "keyed", "--realign"], "crop search"),
])
def test_robustness_refuses_bad_settings_before_writing_or_loading(tmp_path, capsys, no_models, extra, message):
    out = tmp_path / "rb"
    assert main(["bench", "robustness", "--quick", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("bitmark bench robustness: ") and err.count("\n") == 1
    assert not out.exists()  # no config.json to block the corrected rerun


def test_robustness_names_every_problem_at_once(tmp_path, capsys, no_models):
    assert main(["bench", "robustness", "--out", str(tmp_path / "rb"), "--attacks", "jpeg:200,blur:99",
                 "--schemes", "nope"]) == 2
    err = capsys.readouterr().err
    assert "jpeg:200" in err and "blur:99" in err and "nope" in err


def test_robustness_refuses_another_configuration_before_touching_the_folder(tmp_path, capsys, no_models):
    out = tmp_path / "rb"
    out.mkdir()
    (out / "config.json").write_text('{"num": 1}\n')
    assert main(["bench", "robustness", "--quick", "--out", str(out)]) == 2
    assert "another configuration" in capsys.readouterr().err
    assert (out / "config.json").read_text() == '{"num": 1}\n' and sorted(p.name for p in out.iterdir()) == ["config.json"]


def test_collapse_refuses_non_positive_counts(tmp_path, capsys):
    for flag in ("--seeds", "--generations"):
        with pytest.raises(SystemExit) as e:
            main(["collapse", "--quick", "--out", str(tmp_path / "x"), flag, "0"])
        assert e.value.code == 2
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("bench", ["recoverability", "radioactivity"])
def test_benches_refuse_missing_models_in_one_line(tmp_path, capsys, bench):
    out = tmp_path / "out"
    argv = ["bench", bench, "--data", "nonsense"] + (["--quick", "--out", str(out)] if bench == "radioactivity" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bitmark bench {bench}: no generator weights") and err.count("\n") == 1
    assert not out.exists()
