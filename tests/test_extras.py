"""A missing optional extra is one line naming `pip install 'bitmark[EXTRA]'` and exit code 2, found before a
long run writes anything (issue 16). Absence is simulated in-process: `sys.modules[name] = None` makes
`import name` raise ImportError."""

import sys
import types

import pytest

from bitmark.benchmarks import baselines
from bitmark.cli import main
from bitmark.io.extras import MissingExtra, require


def _hide(monkeypatch, *modules):
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)


def test_require_names_the_extra(monkeypatch):
    _hide(monkeypatch, "matplotlib")
    with pytest.raises(MissingExtra, match=r"^matplotlib is not installed \(needed for the figures\): pip install 'bitmark\[plots\]'$"):
        require("matplotlib", "plots", "the figures")
    with pytest.raises(ImportError):  # code that falls back on ImportError still does
        require("matplotlib", "plots")


@pytest.mark.parametrize("argv, hidden, extra", [
    (["bench", "robustness", "--quick", "--out", "{tmp}/out"], ("matplotlib",), "plots"),
    (["bench", "robustness", "--quick", "--out", "{tmp}/out"], ("skimage", "skimage.data"), "data"),
    (["bench", "radioactivity", "--quick", "--out", "{tmp}/out"], ("matplotlib",), "plots"),
    (["bench", "recoverability", "--num", "2"], ("skimage", "skimage.data"), "data"),
    (["collapse", "--quick", "--out", "{tmp}/out"], ("matplotlib",), "plots"),
    (["collapse", "--quick", "--out", "{tmp}/out"], ("skimage", "skimage.data"), "data"),
    (["train", "classifier", "--data", "digits", "--steps", "1", "--out", "{tmp}/w", "--run-dir", "{tmp}/out"],
     ("sklearn", "sklearn.datasets"), "data"),
])
def test_commands_stop_with_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, hidden, extra):
    import bitmark.models

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded before the extras were checked")

    if argv[0] != "train":
        monkeypatch.setattr(bitmark.models, "load_generator", loaded)
    _hide(monkeypatch, *hidden)
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and f"pip install 'bitmark[{extra}]'" in err
    assert err.startswith(f"bitmark {argv[0]}")
    assert not (tmp_path / "out").exists()  # nothing written that would block the rerun after installing


def test_the_baselines_are_skipped_with_the_reason(monkeypatch):
    _hide(monkeypatch, "imwatermark")
    assert "pip install 'bitmark[baselines]'" in baselines.available()
    with pytest.raises(MissingExtra, match="invisible-watermark"):
        baselines.PostHoc("dwtDctSvd")
    monkeypatch.setitem(sys.modules, "imwatermark", types.ModuleType("imwatermark"))  # present, but not onnxruntime
    _hide(monkeypatch, "onnxruntime")
    assert baselines.available("dwtDctSvd") is None
    assert "onnxruntime is not installed" in baselines.available("rivaGan")
