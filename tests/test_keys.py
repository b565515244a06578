import json
import os
import stat

import pytest

from bitmark import ConfigMismatch, KeyFileError, WatermarkConfig, WatermarkKey
from bitmark.detectors import BitDetector


def test_round_trip_and_mode(tmp_path):
    key = WatermarkKey.generate(rule="keyed", context=4, delta=1.5, scales=(3, 1, 2))
    path = key.save(tmp_path / "k.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    back = WatermarkKey.load(path)
    assert back == key and back.key_id == key.key_id
    assert back.config.scales == (1, 2, 3)
    assert len(key.secret) == 32 and len(key.key_id) == 12


def test_keys_are_random_and_ids_short():
    a, b = WatermarkKey.generate(), WatermarkKey.generate()
    assert a.secret != b.secret and a.key_id != b.key_id
    assert a.secret.hex() not in repr(a)  # the secret never shows in a repr


def test_save_refuses_to_overwrite(tmp_path):
    key = WatermarkKey.generate()
    key.save(tmp_path / "k.json")
    with pytest.raises(FileExistsError):
        WatermarkKey.generate().save(tmp_path / "k.json")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(key_id="000000000000"), "does not match"),
        (lambda d: d.update(format="other"), "not a bitmark key"),
        (lambda d: d["config"].update(rule="nope"), "unknown green rule"),
        (lambda d: d["config"].update(context=9), "2..8"),
        (lambda d: d["config"].update(colour="red"), "unknown configuration"),
        (lambda d: d.update(secret="abcd"), "32 bytes"),
    ],
)
def test_bad_key_files_are_refused(tmp_path, edit, message):
    d = WatermarkKey.generate().to_dict()
    edit(d)
    (tmp_path / "k.json").write_text(json.dumps(d))
    with pytest.raises(KeyFileError, match=message):
        WatermarkKey.load(tmp_path / "k.json")


def test_unreadable_key_file(tmp_path):
    (tmp_path / "k.json").write_text("{not json")
    with pytest.raises(KeyFileError, match="cannot read"):
        WatermarkKey.load(tmp_path / "k.json")


@pytest.mark.parametrize("bad", [{"context": 1}, {"context": 9}, {"rule": "kgw"}, {"delta": -1.0}, {"scales": (-1,)}])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        WatermarkConfig(**bad)


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
