import hashlib

import numpy as np
import pytest
import torch

from bitmark import GreenRule, WatermarkConfig, WatermarkKey
from bitmark.core.rules import contexts

FIXED = bytes(range(32))


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(np.packbits(t.numpy().ravel()).tobytes()).hexdigest()[:16]


@pytest.mark.parametrize(
    "rule, n, shape, digest, head",
    [
        ("keyed-spatial", 2, (20, 16, 2), "202605a4c61b9544", [0, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1]),
        ("keyed", 3, (1, 16, 4), "24aa39fd29f9b053", [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]),
        ("keyed-spatial", 8, (20, 16, 128), "bae97a9af5f2e2e7", [1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 0, 1]),
    ],
)
def test_golden_tables(rule, n, shape, digest, head):
    """The tables of a fixed secret never change: keys made today must detect tomorrow, anywhere."""
    t = GreenRule(WatermarkKey(FIXED, WatermarkConfig(rule=rule, context=n))).table(3, 4, 5, 16)
    assert tuple(t.shape) == shape
    assert t.ravel()[:16].int().tolist() == head
    assert _digest(t) == digest


def test_tables_depend_on_secret_scale_and_position():
    a = GreenRule(WatermarkKey(FIXED, WatermarkConfig()))
    b = GreenRule(WatermarkKey(bytes(32), WatermarkConfig()))
    assert not torch.equal(a.table(0, 8, 8, 16), b.table(0, 8, 8, 16))
    assert not torch.equal(a.table(0, 8, 8, 16), a.table(1, 8, 8, 16))
    t = a.table(0, 8, 8, 16)
    assert not torch.equal(t[0], t[1])  # spatial salt: tokens differ
    assert 0.45 < t.float().mean() < 0.55


def test_keyed_rule_is_shared_by_all_tokens_and_grids():
    r = GreenRule(WatermarkKey(FIXED, WatermarkConfig(rule="keyed")))
    assert r.table(2, 4, 4, 16).shape[0] == 1
    assert torch.equal(r.table(2, 4, 4, 16), r.table(2, 8, 8, 16))


def test_bitmark_2025_is_the_flip_rule():
    r = GreenRule(WatermarkKey(FIXED, WatermarkConfig(rule="bitmark-2025", context=3)))
    t = r.table(0, 2, 2, 8)
    ctx = torch.arange(4)
    assert torch.equal(t[0, 5], (ctx & 1) == 0)  # green exactly when the bit differs from bit j-1


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_contexts_match_definition(n):
    bits = torch.rand(3, 7, 12) < 0.5
    ctx = contexts(bits, n)
    assert ctx.shape == (3, 7, 12 - n + 1)
    for j in range(n - 1, 12):
        want = sum(bits[..., j - k].int() << (k - 1) for k in range(1, n))
        assert torch.equal(ctx[..., j - n + 1], want)
