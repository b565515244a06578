import copy
import dataclasses
import json
import math
import os
import pickle
import stat
import subprocess

import pytest

from bitmark import ConfigMismatch, GreenRule, KeyFileError, WatermarkConfig, WatermarkKey, WatermarkSampler
from bitmark.cli.main import main
from bitmark.core import keys as keys_module
from bitmark.detectors import BitDetector


def write_key_dict(path, d, mode=0o600):
    path.write_text(json.dumps(d))
    os.chmod(path, mode)
    return path


def retagged(d):
    """The dict with tags recomputed from its secret: a file whose values are invalid but whose tags match."""
    body = {k: v for k, v in d.items() if k != "tags"}
    return {**body, "tags": keys_module._tags(bytes.fromhex(d["secret"]), body)}


def v1_dict(key):
    d = key.to_dict()
    del d["tags"]
    d["version"] = 1
    return d


def test_round_trip_and_mode(tmp_path):
    key = WatermarkKey.generate(rule="keyed", context=4, delta=1.5, scales=(3, 1, 2))
    path = key.save(tmp_path / "k.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    back = WatermarkKey.load(path)
    assert back == key and back.key_id == key.key_id and hash(back) == hash(key)
    assert back.config.scales == (1, 2, 3)
    assert len(key.secret) == 32 and len(key.key_id) == 12
    assert set(json.loads(path.read_text())["tags"]) == {
        "format", "version", "key_id", "config.rule", "config.context", "config.delta", "config.scales", "file"}


def test_keys_are_random_and_ids_short():
    a, b = WatermarkKey.generate(), WatermarkKey.generate()
    assert a.secret != b.secret and a.key_id != b.key_id and a != b


def test_save_refuses_to_overwrite(tmp_path):
    key = WatermarkKey.generate()
    key.save(tmp_path / "k.json")
    with pytest.raises(FileExistsError):
        WatermarkKey.generate().save(tmp_path / "k.json")


@pytest.mark.parametrize(
    "field, value",
    [("rule", "keyed"), ("context", 3), ("delta", 0.0), ("delta", 2), ("delta", 4.0), ("scales", [99]), ("scales", [1, 2])],
)
def test_every_config_edit_is_refused_naming_the_field(tmp_path, field, value):
    d = WatermarkKey.generate(scales=(1, 2, 3)).to_dict()
    d["config"][field] = value
    with pytest.raises(KeyFileError, match=rf"{field} \(now .*\) was edited"):
        WatermarkKey.load(write_key_dict(tmp_path / "k.json", d))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(key_id="000000000000"), "does not match its secret"),
        (lambda d: d.update(secret=os.urandom(32).hex()), "does not match its secret"),
        (lambda d: d.update(format="other"), "not a bitmark key"),
        (lambda d: d.update(version=3), "version 3 is not supported"),
        (lambda d: d.update(version="2"), "must be an integer"),
        (lambda d: d.update(version=2.0), "must be an integer"),
        (lambda d: d.update(colour="red"), r"unknown top-level field.*colour"),
        (lambda d: d.pop("tags"), r"missing.*tags"),
        (lambda d: d["tags"].pop("config.delta"), "tags\" were edited"),
        (lambda d: d["tags"].update({"config.delta": d["tags"]["config.rule"]}), r"delta \(now 2.0\) was edited"),
        (lambda d: d["config"].update(colour="red"), "unknown configuration"),
        (lambda d: d["config"].pop("delta"), r"missing.*delta"),
        (lambda d: d.update(config=[1, 2]), "must be a JSON object"),
        (lambda d: d.update(secret="abcd"), "32 bytes"),
        (lambda d: d.update(secret=7), "hex string"),
    ],
)
def test_bad_key_files_are_refused(tmp_path, edit, message):
    d = WatermarkKey.generate().to_dict()
    edit(d)
    with pytest.raises(KeyFileError, match=message):
        WatermarkKey.load(write_key_dict(tmp_path / "k.json", d))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("scales", "12", "list of scale indices"),
        ("scales", [], "at least one scale"),
        ("scales", [1.0], "integers >= 0"),
        ("scales", [True], "integers >= 0"),
        ("scales", [-1], "integers >= 0"),
        ("scales", {"1": 2}, "integers >= 0"),
        ("delta", 0, "finite number > 0"),
        ("delta", "2", "finite number > 0"),
        ("delta", True, "finite number > 0"),
        ("delta", float("inf"), "finite number > 0"),
        ("delta", float("nan"), "finite number > 0"),
        ("context", 2.0, "2..8"),
        ("context", True, "2..8"),
        ("context", 9, "2..8"),
        ("rule", None, "unknown green rule"),
    ],
)
def test_invalid_values_are_refused_even_with_matching_tags(tmp_path, field, value, message):
    d = WatermarkKey.generate().to_dict()
    d["config"][field] = value
    with pytest.raises(KeyFileError, match=message):
        WatermarkKey.load(write_key_dict(tmp_path / "k.json", retagged(d)))


def test_unreadable_key_file(tmp_path):
    path = tmp_path / "k.json"
    path.write_text("{not json")
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="cannot read"):
        WatermarkKey.load(path)
    with pytest.raises(KeyFileError, match="cannot read"):
        WatermarkKey.load(tmp_path / "missing.json")


@pytest.mark.parametrize("mode", [0o644, 0o666, 0o640, 0o604])
def test_key_files_open_to_others_are_refused_with_the_chmod_that_fixes_them(tmp_path, mode):
    key = WatermarkKey.generate()
    path = key.save(tmp_path / "my key.json")
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=rf"permissions {mode:04o} are too open") as e:
        WatermarkKey.load(path)
    fix = str(e.value).split("Fix it with: ")[1].split(" (or")[0]
    assert fix == f"chmod 600 '{path}'"  # quoted, ready to paste
    assert WatermarkKey.load(path, allow_shared=True) == key
    subprocess.run(fix, shell=True, check=True)  # the hint, run as printed, fixes it
    assert WatermarkKey.load(path) == key


def test_cli_refuses_a_shared_key_unless_overridden(tmp_path, capsys):
    import torch

    from bitmark import save_pyramid

    key = WatermarkKey.generate()
    path = key.save(tmp_path / "k.json")
    path.chmod(0o644)
    pyramid = save_pyramid(tmp_path / "p.npz", [torch.ones(1, 1, 1, 4, dtype=torch.bool), torch.zeros(1, 2, 2, 4, dtype=torch.bool)])
    assert main(["detect", "--key", str(path), str(pyramid)]) == 2
    assert f"chmod 600 {path}" in capsys.readouterr().err
    assert main(["detect", "--key", str(path), "--allow-shared-key", "--json", str(pyramid)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["key_id"] == key.key_id


def test_the_secret_does_not_leak_through_generic_serialisers():
    key = WatermarkKey.generate()
    secret = key.secret.hex()
    assert secret not in repr(key) and secret not in str(key)
    with pytest.raises(TypeError):
        vars(key)
    with pytest.raises(TypeError):
        dataclasses.asdict(key)
    assert not dataclasses.is_dataclass(key)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="not pickled"):
            pickle.dumps(key, protocol=protocol)
    for holder in (GreenRule(key), WatermarkSampler(key), BitDetector(key)):  # objects that hold a key
        with pytest.raises(TypeError, match="not pickled"):
            pickle.dumps(holder)
        assert secret not in repr(vars(holder))

    @dataclasses.dataclass
    class Run:
        key: WatermarkKey
        name: str

    assert secret not in repr(dataclasses.asdict(Run(key, "x")))  # a key inside a dataclass stays hidden
    assert copy.deepcopy(key) is key and copy.copy(key) is key
    with pytest.raises(AttributeError):
        key.config = WatermarkConfig()
    assert secret in json.dumps(key.to_dict())  # to_dict is the saving format


def test_version_1_files_are_refused_pointing_at_the_upgrade_which_keeps_secret_and_config(tmp_path, capsys):
    key = WatermarkKey.generate(context=3, delta=1.5, scales=(2, 4))
    old = write_key_dict(tmp_path / "old.json", v1_dict(key))
    with pytest.raises(KeyFileError, match=r"version 1 .* bitmark keygen --upgrade .*old.json --out NEW.json"):
        WatermarkKey.load(old)
    assert main(["keygen", "--upgrade", str(old), "--out", str(tmp_path / "new.json"), "--delta", "3"]) == 2
    assert "drop --delta" in capsys.readouterr().err
    assert main(["keygen", "--upgrade", str(old), "--out", str(tmp_path / "new.json"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["key_id"] == key.key_id and info["upgraded_from"] == str(old)
    assert WatermarkKey.load(tmp_path / "new.json") == key
    assert stat.S_IMODE(os.stat(tmp_path / "new.json").st_mode) == 0o600
    with pytest.raises(KeyFileError, match="already a version 2"):
        WatermarkKey.upgrade(tmp_path / "new.json", tmp_path / "again.json")
    v1 = v1_dict(key)
    v1["config"]["scales"] = "12"  # old files are validated as strictly
    with pytest.raises(KeyFileError, match="list of scale indices"):
        WatermarkKey.upgrade(write_key_dict(tmp_path / "bad.json", v1), tmp_path / "bad-new.json")
    assert not (tmp_path / "bad-new.json").exists()
    (tmp_path / "old.json").chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        WatermarkKey.upgrade(old, tmp_path / "other.json")


@pytest.mark.parametrize(
    "bad",
    [{"context": 1}, {"context": 9}, {"context": True}, {"context": 2.5}, {"rule": "kgw"}, {"delta": -1.0},
     {"delta": 0.0}, {"delta": math.inf}, {"delta": math.nan}, {"delta": "2"}, {"scales": (-1,)}, {"scales": ()},
     {"scales": "12"}, {"scales": (1.0,)}, {"scales": (False,)}, {"scales": 3}],
)
def test_config_validation(bad):
    with pytest.raises(ValueError):
        WatermarkConfig(**bad)


def test_config_accepts_numpy_numbers():
    import numpy as np

    c = WatermarkConfig(context=np.int64(3), delta=np.float32(1.5), scales=[np.int64(2), 1])
    assert c.to_dict() == {"rule": "keyed-spatial", "context": 3, "delta": 1.5, "scales": [1, 2]}
    assert type(c.context) is int and type(c.delta) is float


@pytest.mark.parametrize("delta", ["inf", "nan", "0", "-1"])
def test_keygen_refuses_bad_deltas_before_writing(tmp_path, capsys, delta):
    out = tmp_path / "k.json"
    assert main(["keygen", "--out", str(out), "--delta", delta]) == 2
    assert "finite number > 0" in capsys.readouterr().err
    assert not out.exists()


def test_keygen_into_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["keygen", "--out", str(tmp_path / "missing" / "dir" / "k.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err and "No such file" in err and "Traceback" not in err


@pytest.mark.parametrize("field, value", [("rule", "keyed"), ("context", 3), ("delta", 4.0)])
def test_detector_refuses_mismatch_naming_the_field(field, value):
    key = WatermarkKey.generate()  # keyed-spatial, n = 2, delta = 2
    with pytest.raises(ConfigMismatch, match=field):
        BitDetector(key, **{field: value})
    BitDetector(key, **{field: getattr(key.config, field)})  # the key's own value is accepted


def test_detector_refuses_unwatermarked_scale():
    key = WatermarkKey.generate(scales=(2, 3))
    with pytest.raises(ValueError, match="not watermarked"):
        BitDetector(key, scales=(1, 2))
