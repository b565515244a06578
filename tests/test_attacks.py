import numpy as np
import pytest
from PIL import Image

import attacks


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 32)
    base = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (32, 1)), np.full((32, 32), 100.0)], -1)
    return np.clip(base[None] + rng.normal(0, 10, (4, 32, 32, 3)), 0, 255).astype(np.uint8)


def test_every_attack_keeps_type_and_size_and_neutral_is_identity(images):
    for name in attacks.names():
        cls = attacks.REGISTRY[name]
        assert cls.unit and cls.grid and all(cls.range[0] <= s <= cls.range[1] for s in cls.grid)
        for s in cls.grid:
            out = attacks.get(name, s)(images, seed=1)
            assert out.shape == images.shape and out.dtype == np.uint8
        if cls.neutral is not None:
            assert np.array_equal(attacks.get(name, cls.neutral)(images), images)
        pil_out = attacks.get(name, cls.grid[0])([Image.fromarray(x) for x in images])
        assert isinstance(pil_out[0], Image.Image) and pil_out[0].size == (32, 32)


def test_attacks_change_images_by_a_sensible_amount(images):
    def mad(spec):
        return np.abs(attacks.parse(spec)(images, seed=0).astype(int) - images).mean()

    assert mad("jpeg:90") < mad("jpeg:30") < mad("jpeg:10")
    assert 0 < mad("noise:0.02") < mad("noise:0.1")
    assert mad("brightness:1.5") > 10 and mad("crop:0.5") > mad("crop:0.95") > 0
    flipped = attacks.get("hflip", 1)(images)
    assert np.array_equal(flipped, images[:, :, ::-1])


def test_noise_is_clipped_not_wrapped():
    white = np.full((1, 16, 16, 3), 255, np.uint8)
    out = attacks.get("noise", 0.3)(white, seed=0)
    assert out.min() < 200 and (out.astype(int) <= 255).all() and (out > 128).mean() > 0.7


def test_random_attacks_are_reproducible(images):
    a = attacks.get("random_crop", 0.7)(images, seed=3)
    assert np.array_equal(a, attacks.get("random_crop", 0.7)(images, seed=3))
    assert not np.array_equal(a, attacks.get("random_crop", 0.7)(images, seed=4))


def test_chain_and_errors(images):
    chain = attacks.parse("jpeg:50+crop:0.71+brightness:1.3")
    assert repr(chain) == "jpeg:50+crop:0.71+brightness:1.3"
    manual = attacks.get("brightness", 1.3)(attacks.get("crop", 0.71)(attacks.get("jpeg", 50)(images)))
    assert np.array_equal(chain(images), manual)
    with pytest.raises(attacks.AttackError, match="known attacks: .*jpeg"):
        attacks.get("jpg", 50)
    with pytest.raises(attacks.AttackError, match="10.0..100.0"):
        attacks.get("jpeg", 101)
    with pytest.raises(attacks.AttackError, match="number"):
        attacks.parse("jpeg:high")
    with pytest.raises(attacks.AttackError, match="uint8"):
        attacks.get("blur", 1)(images.astype(np.float32))
