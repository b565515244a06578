"""The speed work changed no result: sampled bits, detector counts and z-scores, and the shipped generator's
samples equal what the code before it computed (tests/speed_golden.json, recorded at commit 1a7400a).

Counts and bits are compared exactly (hashes); z, -log10 p and the expected green count to 1e-10
relative (they are recorded to 12 significant digits; a reordered float sum may move the last bits).
"""

import json

import numpy as np
import pytest

import speed_golden

GOLDEN = json.loads(speed_golden.GOLDEN.read_text())


@pytest.fixture(scope="module")
def now():
    return speed_golden.compute()


def test_every_case_is_recorded(now):
    assert set(now) == set(GOLDEN)


@pytest.mark.parametrize("prefix", ["sampler/", "generator/"])
def test_bits_unchanged(now, prefix):
    names = [k for k in GOLDEN if k.startswith(prefix)]
    assert names
    changed = [k for k in names if now[k] != GOLDEN[k]]
    assert not changed, changed


def test_detector_unchanged(now):
    names = [k for k in GOLDEN if k.startswith("detector/")]
    assert len(names) > 40
    for k in names:
        assert now[k]["counts"] == GOLDEN[k]["counts"], k
        for field in ("z", "log10_p", "expected"):
            np.testing.assert_allclose(now[k][field], GOLDEN[k][field], rtol=1e-10, atol=1e-12, err_msg=f"{k} {field}")
