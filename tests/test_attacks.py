import numpy as np
import pytest
import torch
from PIL import Image

from bitmark import attacks
from bitmark.detectors import BitDetector
from bitmark.evaluation.keys import fixed_key
from bitmark.evaluation.quality import psnr
from bitmark.models.sampling import sample_images

KEY = fixed_key(0)
DETECTOR = BitDetector(KEY)


@pytest.fixture(scope="module")
def samples(models):
    """16 watermarked and 16 clean samples of the shipped generator (same seeds and classes)."""
    gen, tok = models
    classes = torch.arange(16) % gen.cfg.num_classes
    marked, _ = sample_images(gen, tok, classes, key=KEY, seed=0, progress=False)
    clean, _ = sample_images(gen, tok, classes, key=None, seed=0, progress=False)
    return marked, clean


def z(images, models) -> np.ndarray:
    return DETECTOR.detect(models[1].encode(images)).z_score


def make(name: str, strength: float, observed) -> attacks.Attack:
    """Any registered attack, with the options the white-box ones need (the key's oracle, observed images)."""
    options = {"oracle": DETECTOR.green_status, "observed": observed}
    accepted = attacks.REGISTRY[name].options
    return attacks.get(name, strength, **{k: v for k, v in options.items() if k in accepted})


def test_every_attack_keeps_type_and_size_and_neutral_is_identity(samples):
    marked, _ = samples
    observed = np.concatenate([marked] * 63)  # enough images for every stealing strength of the grid
    odd = [Image.fromarray(x).resize((40, 48)) for x in marked[:2]]  # not the models' 32x32
    for name in attacks.names():
        cls = attacks.REGISTRY[name]
        assert cls.unit and cls.grid and cls.description and all(cls.range[0] <= s <= cls.range[1] for s in cls.grid)
        for s in cls.grid:
            out = make(name, s, observed)(marked[:4], seed=1)
            assert out.shape == marked[:4].shape and out.dtype == np.uint8, (name, s)
        if cls.neutral is not None:
            assert np.array_equal(make(name, cls.neutral, observed)(marked[:4]), marked[:4]), name
        pil_out = make(name, cls.grid[0], observed)(odd, seed=0)
        assert all(isinstance(p, Image.Image) and p.size == (40, 48) for p in pil_out), name


def _damage_order(cls) -> list[list[float]]:
    """Runs of the grid along which damage must grow: away from the neutral value on each side of it
    (brightness 0.75 -> 0.5 and 1.5 -> 2); JPEG/WebP: falling quality; stealing: growing N."""
    grid = list(cls.grid)
    if cls.neutral is None:
        return [grid]
    below = sorted((s for s in grid if s < cls.neutral), reverse=True)
    above = sorted(s for s in grid if s > cls.neutral)
    return [run for run in (below, above) if len(run) > 1]


def test_damage_grows_with_strength_over_every_default_grid(samples):
    marked, _ = samples
    observed = np.concatenate([marked] * 63)
    for name in attacks.names():
        cls = attacks.REGISTRY[name]
        for run in _damage_order(cls):
            values = [psnr(make(name, s, observed)(marked, seed=0), marked) for s in run]
            # 0.2 dB of slack: averages over 16 images of randomised attacks still wobble a little
            assert all(b <= a + 0.2 for a, b in zip(values, values[1:])), (name, run, values)


def test_randomised_attacks_are_reproducible_and_seeded(samples):
    marked, _ = samples
    for spec in ("random_crop:0.7", "noise:0.05", "regen_scales:2", "bitflip:0.5"):
        attack = attacks.parse(spec, oracle=DETECTOR.green_status)
        a = attack(marked[:4], seed=3)
        assert np.array_equal(a, attack(marked[:4], seed=3)), spec
        assert not np.array_equal(a, attack(marked[:4], seed=4)), spec


def test_noise_is_clipped_not_wrapped():
    white = np.full((1, 16, 16, 3), 255, np.uint8)
    out = attacks.get("noise", 0.3)(white, seed=0)
    assert out.min() < 200 and (out.astype(int) <= 255).all() and (out > 128).mean() > 0.7


def test_classical_attacks_do_what_they_say(samples):
    marked, _ = samples
    assert np.array_equal(attacks.get("hflip", 1)(marked), marked[:, :, ::-1])
    jpeg = attacks.get("jpeg", 75)(marked)
    assert 20 < psnr(jpeg, marked) < 45  # lossy, but not destroyed


def test_chain_and_errors(samples):
    marked, _ = samples
    chain = attacks.parse("jpeg:50+crop:0.71+brightness:1.3")
    assert repr(chain) == "jpeg:50+crop:0.71+brightness:1.3"
    manual = attacks.get("brightness", 1.3)(attacks.get("crop", 0.71)(attacks.get("jpeg", 50)(marked)))
    assert np.array_equal(chain(marked), manual)
    with pytest.raises(attacks.AttackError, match="known attacks: .*jpeg"):
        attacks.get("jpg", 50)
    with pytest.raises(attacks.AttackError, match="10.0..100.0"):
        attacks.get("jpeg", 101)
    with pytest.raises(attacks.AttackError, match="number"):
        attacks.parse("jpeg:high")
    with pytest.raises(attacks.AttackError, match="uint8"):
        attacks.get("blur", 1)(marked.astype(np.float32))
    with pytest.raises(attacks.AttackError, match="whole number"):
        attacks.get("regen_scales", 1.5)
    with pytest.raises(attacks.AttackError, match="white-box.*oracle"):
        attacks.get("bitflip", 0.5)
    with pytest.raises(attacks.AttackError, match="at least 100 watermarked"):
        attacks.get("steal_forge", 100, observed=marked)


def test_regeneration_and_white_box_attacks_move_the_mark(samples, models):
    """Directions that must hold on real samples (margins are many standard deviations of the mean z)."""
    marked, clean = samples
    before = z(marked, models).mean()
    assert before > 15
    assert z(attacks.get("regen_scales", 3)(marked), models).mean() < 3  # everything but the coarse scale redrawn
    assert z(attacks.get("bitflip", 1.0, oracle=DETECTOR.green_status)(marked), models).mean() < -5
    forged = attacks.get("forge", 1.0, oracle=DETECTOR.green_status)(clean)
    assert DETECTOR.detect(models[1].encode(forged)).is_watermarked.all()


def test_rule_stealing_learns_green_cells_from_watermarked_images(models):
    """An estimate from 200 watermarked samples calls cells right far more often than chance."""
    gen, tok = models
    observed, bits = sample_images(gen, tok, torch.arange(200) % gen.cfg.num_classes, key=KEY, seed=7, progress=False)
    rule = attacks.whitebox.StolenRule(tok.encode(observed))
    guess, truth = rule(bits), DETECTOR.green_status(bits)
    called = torch.cat([(g != 0).flatten() for g in guess])
    agree = torch.cat([(g == t).flatten() for g, t in zip(guess, truth)])[called]
    assert called.float().mean() > 0.3 and agree.float().mean() > 0.8
