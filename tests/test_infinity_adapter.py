"""The Infinity adapter, through a stand-in package (tests/fake_infinity) and, when present, the real one.

The stand-in mimics Infinity's module path, sampling function (name, signature, in-place masking, index
shape), per-scale call pattern (temperature and guidance before the call, (B, h*w*d, 2) layout, 8B's
pixel_shuffle un-patchify) and a BSQ-like VAE. Tests against real Infinity skip unless its code is
importable and, for the checkpoint tests, BITMARK_INFINITY_VAE / BITMARK_INFINITY_MODEL / BITMARK_INFINITY_T5
name files the user has.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from bitmark import PlainSampler, WatermarkConfig, WatermarkKey, WatermarkSampler
from bitmark.adapters.infinity import (
    InfinityEncoder,
    InfinityNotAvailable,
    ScheduleMismatch,
    import_infinity,
    infinity_schedule,
    load_infinity_transformer,
    load_infinity_vae,
    schedule_grids,
    watermarked,
)
from bitmark.adapters.infinity.sampler_hook import SAMPLING_FUNCTION
from bitmark.core.rules import GreenRule, contexts
from bitmark.detectors import BitDetector

FAKE_ROOT = Path(__file__).parent / "fake_infinity"
SCHEDULE = [(1, 1, 1), (1, 2, 2), (1, 4, 4), (1, 6, 6), (1, 8, 8)]
KEY = WatermarkKey(bytes(range(32)), WatermarkConfig())  # fixed, so that every verdict here is reproducible
B = 4


def _drop_infinity_modules(monkeypatch) -> None:
    for name in [m for m in sys.modules if m == "infinity" or m.startswith("infinity.")]:
        monkeypatch.delitem(sys.modules, name)


@pytest.fixture
def fake(monkeypatch):
    """The stand-in importable as `infinity` for one test; real Infinity modules (if loaded) come back after."""
    _drop_infinity_modules(monkeypatch)
    monkeypatch.syspath_prepend(str(FAKE_ROOT))
    module = importlib.import_module("infinity.models.infinity")
    assert Path(module.__file__).is_relative_to(FAKE_ROOT)
    yield module
    for name in [m for m in sys.modules if m == "infinity" or m.startswith("infinity.")]:
        del sys.modules[name]


def sampling(module):
    return getattr(module, SAMPLING_FUNCTION)


def generate(module, seed=0, d_vae=16, patchify=0, **kw):
    model = module.Infinity(d_vae=d_vae, apply_spatial_patchify=patchify)
    S = len(SCHEDULE)
    args = dict(scale_schedule=SCHEDULE, label_B_or_BLT=[i % 4 for i in range(B)], B=B, g_seed=seed,
                cfg_list=[3.0] * S, tau_list=[1.0] * S, top_k=900, top_p=0.97)
    return model.autoregressive_infer_cfg(**{**args, **kw})


# ---------------------------------------------------------------------------------------------- embedding


def test_watermarks_records_and_is_detected(fake):
    original = sampling(fake)
    with watermarked(WatermarkSampler(KEY), SCHEDULE, seed=1) as run:  # imports infinity.models.infinity itself
        assert sampling(fake) is not original
        _, idx, _ = generate(fake)
    assert sampling(fake) is original
    assert [tuple(t.shape) for t in run.pyramid] == [(B, h, w, 16) for _, h, w in SCHEDULE]
    assert run.complete and run.pyramids == [run.pyramid] and run.calls == len(SCHEDULE)
    for recorded, returned in zip(run.pyramid, idx):  # what Infinity consumed is what was recorded
        assert torch.equal(recorded, returned.squeeze(1).bool())
    result = BitDetector(KEY).detect(run.pyramid)
    assert result.is_watermarked.all() and result.z_score.min() > 4


def test_unwatermarked_runs_are_not_flagged(fake):
    _, idx, _ = generate(fake, seed=3)  # Infinity's own sampler
    with watermarked(PlainSampler(), SCHEDULE, seed=1) as run:
        generate(fake)
    for pyramid in ([t.squeeze(1).bool() for t in idx], run.pyramid):
        result = BitDetector(KEY).detect(pyramid)
        assert not result.is_watermarked.any() and np.abs(result.z_score).max() < 3


def test_several_generations_in_one_block(fake):
    with watermarked(WatermarkSampler(KEY), SCHEDULE, seed=1) as run:
        generate(fake, seed=0)
        generate(fake, seed=0)
    assert len(run.pyramids) == 2 and run.pyramid is run.pyramids[1]
    assert not torch.equal(run.pyramids[0][-1], run.pyramids[1][-1])  # the watermark rng moved on
    assert BitDetector(KEY).detect(run.pyramids[0]).is_watermarked.all()


def test_own_generator_is_separate_from_infinitys(fake):
    logits = torch.randn(2, 4 * 16, 2, generator=torch.Generator().manual_seed(0))
    rng = torch.Generator().manual_seed(5)
    state = rng.get_state()
    draws = []
    for seed, model_rng in ((7, rng), (7, torch.Generator().manual_seed(99)), (8, rng)):
        with watermarked(WatermarkSampler(KEY), [(1, 2, 2)], seed=seed):
            draws.append(sampling(fake)(logits.clone(), top_k=0, top_p=0.0, rng=model_rng, num_samples=1))
    assert torch.equal(rng.get_state(), state)  # Infinity's rng is not consumed
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])  # the run's seed decides
    assert draws[0].shape == (2, 64, 1) and draws[0].dtype == torch.int64


@pytest.mark.parametrize("top_k, top_p", [(1, 0.0), (0, 0.9), (900, 0.97)])
def test_plain_wrapper_masks_logits_as_infinity_does(fake, top_k, top_p):
    logits = torch.randn(3, 36 * 16, 2, generator=torch.Generator().manual_seed(top_k)) * 2
    theirs, ours = logits.clone(), logits.clone()
    sampling(fake)(theirs, top_k=top_k, top_p=top_p, rng=None, num_samples=1)
    with watermarked(PlainSampler(), [(1, 6, 6)], seed=0):
        idx = sampling(fake)(ours, top_k=top_k, top_p=top_p, rng=None, num_samples=1)
    assert theirs.isinf().any()
    assert torch.equal(ours.isinf(), theirs.isinf()) and torch.equal(ours[~ours.isinf()], theirs[~theirs.isinf()])
    assert torch.isfinite(ours.gather(-1, idx)).all()  # every drawn value was allowed


def test_watermarked_logits_describe_the_draw(fake):
    logits = torch.randn(2, 64 * 16, 2, generator=torch.Generator().manual_seed(1))
    free, greedy = logits.clone(), logits.clone()
    with watermarked(WatermarkSampler(KEY), [(1, 8, 8)], seed=0):
        bits = sampling(fake)(free, top_k=0, top_p=0.0, rng=None, num_samples=1)[..., 0].view(2, 64, 16).bool()
    rule = GreenRule(KEY)
    green = rule.green_values(rule.table(0, 8, 8, 16), contexts(bits, 2))
    moved = ((free[..., 1] - free[..., 0]) - (logits[..., 1] - logits[..., 0])).view(2, 64, 16)
    assert torch.allclose(moved[..., 0], torch.zeros(())) and torch.allclose(moved[..., 1:], 2.0 * (2.0 * green - 1))
    with watermarked(WatermarkSampler(KEY), [(1, 8, 8)], seed=0):
        chosen = sampling(fake)(greedy, top_k=1, top_p=0.0, rng=None, num_samples=1)[..., 0]
    assert torch.equal(greedy.argmax(-1), chosen) and greedy.isinf().sum(-1).eq(1).all()
    assert not torch.equal(chosen, logits.argmax(-1))  # the bias changed some greedy choices


def test_entropy_gated_logits_describe_the_draw(fake):
    """With min_entropy the rewritten logits carry the bias only where the gate opened."""
    logits = torch.randn(2, 64 * 16, 2, generator=torch.Generator().manual_seed(1)) * 2
    free = logits.clone()
    sampler = WatermarkSampler(KEY, min_entropy=0.3)
    with watermarked(sampler, [(1, 8, 8)], seed=0):
        bits = sampling(fake)(free, top_k=0, top_p=0.0, rng=None, num_samples=1)[..., 0].view(2, 64, 16).bool()
    rule = GreenRule(KEY)
    green = rule.green_values(rule.table(0, 8, 8, 16), contexts(bits, 2))
    lo = (logits[..., 1] - logits[..., 0]).view(2, 64, 16)
    gate = (torch.nn.functional.softplus(lo) - lo * torch.sigmoid(lo) > 0.3).float()
    moved = (free[..., 1] - free[..., 0]).view(2, 64, 16) - lo
    assert 0 < sampler.gate_counts[0] < sampler.gate_counts[1]  # some bits gated, some not
    assert torch.allclose(moved[..., 0], torch.zeros(()))
    assert torch.allclose(moved[..., 1:], 2.0 * (2.0 * green - 1) * gate[..., 1:], atol=1e-5)


def test_sampler_truncation_must_agree_with_infinitys(fake):
    with pytest.raises(ValueError, match="top_p=0.5"):
        with watermarked(WatermarkSampler(KEY, top_p=0.5), SCHEDULE, seed=0):
            generate(fake)  # Infinity passes top_p=0.97
    with watermarked(WatermarkSampler(KEY, top_k=1), SCHEDULE, seed=0) as run:
        generate(fake, top_k=1, top_p=0.0)
    assert run.complete


def test_refuses_nesting(fake):
    original = sampling(fake)
    with watermarked(WatermarkSampler(KEY), SCHEDULE, seed=0):
        wrapped = sampling(fake)
        with pytest.raises(RuntimeError, match="nesting"):
            with watermarked(PlainSampler(), SCHEDULE, seed=0):
                pass
        assert sampling(fake) is wrapped  # the refused inner block changed nothing
    assert sampling(fake) is original


def test_restores_after_an_exception(fake):
    original = sampling(fake)

    class Interrupted(Exception):
        pass

    with pytest.raises(Interrupted):
        with watermarked(WatermarkSampler(KEY), SCHEDULE, seed=0):
            generate(fake, trunk_scale=2)
            raise Interrupted
    assert sampling(fake) is original
    with watermarked(WatermarkSampler(KEY), SCHEDULE, seed=0) as run:  # not left marked as active
        generate(fake)
    assert run.complete


def test_refuses_unexpected_signature(fake, monkeypatch):
    def renamed(logits, top_k=0, top_p=0.0, generator=None, num_samples=1):
        raise AssertionError("must not be called")

    monkeypatch.setattr(fake, SAMPLING_FUNCTION, renamed)
    with pytest.raises(TypeError, match="signature"):
        with watermarked(WatermarkSampler(KEY), SCHEDULE, seed=0):
            pass
    assert sampling(fake) is renamed
    with pytest.raises(TypeError, match="no function"):
        with watermarked(WatermarkSampler(KEY), SCHEDULE, module=types.ModuleType("elsewhere")):
            pass
    with pytest.raises(TypeError, match="WatermarkSampler"):
        with watermarked(lambda *a: None, SCHEDULE, seed=0):
            pass


def test_scale_and_length_mismatches(fake):
    original = sampling(fake)
    wrong = [(1, 1, 1), (1, 2, 2), (1, 3, 3), (1, 6, 6), (1, 8, 8)]
    with pytest.raises(ScheduleMismatch, match="scale 2 \\(3x3"):
        with watermarked(WatermarkSampler(KEY), wrong, seed=0):
            generate(fake)
    assert sampling(fake) is original
    with pytest.raises(ScheduleMismatch, match="stopped after 2 of 5"):
        with watermarked(WatermarkSampler(KEY), SCHEDULE, seed=0):
            generate(fake, trunk_scale=2)
            generate(fake)
    with watermarked(WatermarkSampler(KEY), [(1, 2, 2)], seed=0):
        with pytest.raises(ValueError, match="bit-label"):
            sampling(fake)(torch.randn(1, 4, 8), top_k=0, top_p=0.0, rng=None, num_samples=1)
        with pytest.raises(ValueError, match="num_samples"):
            sampling(fake)(torch.randn(1, 64, 2), top_k=0, top_p=0.0, rng=None, num_samples=2)
    assert sampling(fake) is original


def test_missing_infinity_gives_a_clear_error(monkeypatch, tmp_path):
    _drop_infinity_modules(monkeypatch)
    monkeypatch.setitem(sys.modules, "infinity", None)  # makes `import infinity...` fail
    with pytest.raises(InfinityNotAvailable, match="FoundationVision"):
        with watermarked(PlainSampler(), 256):
            pass
    path = tmp_path / "infinity_vae_d32reg.pth"
    torch.save({"vae": {}}, path)
    with pytest.raises(InfinityNotAvailable, match="PYTHONPATH"):
        load_infinity_vae(path)
    with pytest.raises(InfinityNotAvailable):
        infinity_schedule(1024, h_div_w=0.5)


def test_missing_dependency_of_infinity_is_named(monkeypatch, tmp_path):
    if importlib.util.find_spec("flash_attn") is not None:
        pytest.skip("flash_attn is installed here")
    _drop_infinity_modules(monkeypatch)
    (tmp_path / "infinity" / "models").mkdir(parents=True)
    (tmp_path / "infinity" / "__init__.py").write_text("")
    (tmp_path / "infinity" / "models" / "__init__.py").write_text("")
    (tmp_path / "infinity" / "models" / "infinity.py").write_text("from flash_attn import flash_attn_func\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(InfinityNotAvailable, match="'flash_attn'"):
            import_infinity()
    finally:
        for name in [m for m in sys.modules if m == "infinity" or m.startswith("infinity.")]:
            del sys.modules[name]


def test_import_bitmark_does_not_import_infinity():
    code = (
        "import sys, bitmark, bitmark.adapters, bitmark.adapters.infinity, detectors\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('infinity', 'flash_attn')]\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{Path(__file__).parents[1]}{os.pathsep}{FAKE_ROOT}"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_schedules():
    for resolution, scales, tokens in ((256, 7, 521), (512, 10, 2521), (768, 12, None), (1024, 13, 10521)):
        grids = schedule_grids(resolution)
        assert len(grids) == scales and grids[-1] == (resolution // 16,) * 2
        assert tokens is None or sum(h * w for h, w in grids) == tokens
    assert sum(h * w for h, w in schedule_grids("1M")) * 32 == 336_672
    assert infinity_schedule("0.25M") == infinity_schedule(512) and infinity_schedule(256)[0] == (1, 1, 1)
    assert schedule_grids([1, (2, 3), (1, 4, 4)]) == [(1, 1), (2, 3), (4, 4)]
    for bad in (300, "2M", [(2, 4, 4)], []):
        with pytest.raises(ValueError):
            schedule_grids(bad)


# ---------------------------------------------------------------------------------------------- detection


class RecordingVAE:
    """Remembers what it was given; returns zero bits of the documented shape."""

    def __init__(self, d=16, patch_size=16):
        self.args, self.d, self.seen = SimpleNamespace(patch_size=patch_size), d, []

    def encode(self, x, scale_schedule):
        self.seen.append((x.clone(), list(scale_schedule)))
        bits = [torch.zeros(len(x), 1, h, w, self.d, dtype=torch.int32) for _, h, w in scale_schedule]
        return None, None, None, bits, [], []


class ReplayVAE(RecordingVAE):
    """Returns given per-scale bits, as if the images encoded to exactly them."""

    def __init__(self, bits, patch_size):
        super().__init__(bits[0].shape[-1], patch_size)
        self.bits = bits

    def encode(self, x, scale_schedule):
        assert [tuple(b.shape[2:4]) for b in self.bits] == [(h, w) for _, h, w in scale_schedule]
        return None, None, None, self.bits, [], []


def _bands(height, width, axis):
    """An image cut into red | green | blue thirds along `axis` (0: rows, 1: columns)."""
    img = np.zeros((height, width, 3), dtype=np.uint8)
    n = img.shape[axis]
    for c in range(3):
        index = [slice(None)] * 2
        index[axis] = slice(c * n // 3, (c + 1) * n // 3) if c < 2 else slice(2 * n // 3, n)
        img[tuple(index) + (c,)] = 255
    return img


def test_preprocessing_crops_the_centre_in_rgb():
    vae = RecordingVAE()
    enc = InfinityEncoder(vae, 256)
    wide = np.zeros((256, 512, 3), dtype=np.uint8)
    wide[:, :128, 0] = wide[:, 128:384, 1] = wide[:, 384:, 2] = 255  # red | green | blue columns
    x = enc.preprocess(wide)
    assert x.shape == (1, 3, 256, 256) and torch.equal(x[0, :, 0, 0], torch.tensor([-1.0, 1.0, -1.0]))
    assert torch.equal(x, x[:, :, :1, :1].expand_as(x))  # only the green centre survives: cropped, not squashed
    tall = _bands(600, 300, axis=0)
    y = enc.preprocess([tall, Image.fromarray(tall)])
    assert y.shape == (2, 3, 256, 256) and torch.equal(y[0], y[1]) and y.min() >= -1 and y.max() <= 1
    assert y[0, 1, 128, 128] > 0.9 and y[0, 0, 128, 128] < -0.9  # the centre of the tall image is green
    red = np.ascontiguousarray(wide[..., [1, 0, 2]])  # blue | red | green columns: a red centre
    x = enc.preprocess(red)
    assert torch.equal(x[0, :, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    bgr_batch = torch.from_numpy(np.stack([red[..., ::-1], red[..., ::-1]]).copy())  # Infinity's output order
    assert torch.equal(enc.preprocess(bgr_batch, bgr=True), torch.cat([x, x]))
    assert torch.equal(enc.preprocess(bgr_batch)[0, :, 0, 0], torch.tensor([-1.0, -1.0, 1.0]))  # read as RGB: blue
    enc.encode(wide)
    assert vae.seen[-1][1] == [(1, h, w) for _, h, w in infinity_schedule(256)]  # passed explicitly
    with pytest.raises(ValueError, match="uint8"):
        enc.preprocess(wide.astype(np.float32))


def test_encoder_reads_the_vae_bits_batched(fake):
    vae = importlib.import_module("infinity.models.bsq_vae.vae").FakeBSQVAE(16, 16)
    enc = InfinityEncoder(vae, SCHEDULE, batch_size=2)
    assert not enc.patchify and enc.size == (128, 128)
    images = np.random.default_rng(0).integers(0, 256, size=(5, 150, 200, 3), dtype=np.uint8)
    pyramid = enc.encode(images)
    assert [tuple(t.shape) for t in pyramid] == [(5, h, w, 16) for _, h, w in SCHEDULE]
    assert all(t.dtype == torch.bool for t in pyramid) and 0.2 < pyramid[-1].float().mean() < 0.8
    direct = vae.encode(enc.preprocess(images), scale_schedule=enc.vae_schedule)[3]
    assert all(torch.equal(a, b.squeeze(1).bool()) for a, b in zip(pyramid, direct))
    assert all(torch.equal(a, b) for a, b in zip(pyramid, enc.encode(images)))


def test_patchified_8b_tokens_round_trip_to_the_sampled_layout(fake):
    with watermarked(WatermarkSampler(KEY), SCHEDULE, seed=2) as run:
        _, idx, _ = generate(fake, d_vae=14, patchify=1)
    assert run.pyramid[-1].shape == (B, 8, 8, 56) and idx[-1].shape == (B, 1, 16, 16, 14)
    enc = InfinityEncoder(ReplayVAE(idx, patch_size=8), SCHEDULE)  # stride 8: patchify found from the VAE
    assert enc.patchify and enc.vae_schedule[-1] == (1, 16, 16) and enc.size == (128, 128)
    pyramid = enc.encode(np.zeros((B, 128, 128, 3), dtype=np.uint8))
    assert all(torch.equal(a, b) for a, b in zip(pyramid, run.pyramid))
    token, vae_bits = pyramid[-1], idx[-1][:, 0].bool()
    for c, dy, dx in ((0, 0, 0), (3, 1, 0), (13, 1, 1), (5, 0, 1)):  # channel c*4 + dy*2 + dx
        assert torch.equal(token[..., c * 4 + dy * 2 + dx], vae_bits[:, dy::2, dx::2, c])
    assert BitDetector(KEY).detect(pyramid).is_watermarked.all()
    channel_last = [t.view(*t.shape[:3], 14, 4).transpose(-1, -2).reshape(t.shape) for t in pyramid]  # (dy*2+dx)*14 + c
    assert not BitDetector(KEY).detect(channel_last).is_watermarked.any()  # the wrong order loses the mark


def test_loaders_read_user_checkpoints(fake, tmp_path):
    vae_module = importlib.import_module("infinity.models.bsq_vae.vae")
    ref = vae_module.FakeBSQVAE(32, 16, seed=3)
    path = tmp_path / "infinity_vae_d32reg.pth"
    torch.save({"vae": ref.state_dict()}, path)
    vae = load_infinity_vae(path)
    assert vae.codebook_dim == 32 and vae.args.patch_size == 16
    assert all(torch.equal(a, b) for a, b in zip(vae.state_dict().values(), ref.state_dict().values()))
    assert not InfinityEncoder.from_checkpoint(path, 256).patchify
    ref8 = vae_module.FakeBSQVAE(14, 8, seed=4)
    path8 = tmp_path / "infinity_vae_d56_f8_14_patchify.pth"
    torch.save({"vae": ref8.state_dict()}, path8)
    assert InfinityEncoder.from_checkpoint(path8, 512).patchify
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_infinity_vae(tmp_path / "absent.pth")
    torch.save(ref.state_dict(), tmp_path / "infinity_vae_d16.pth")
    with pytest.raises(ValueError, match="'vae' entry"):
        load_infinity_vae(tmp_path / "infinity_vae_d16.pth")
    torch.save({"vae": ref.state_dict()}, tmp_path / "tokenizer.pth")
    with pytest.raises(ValueError, match="codebook_dim"):
        load_infinity_vae(tmp_path / "tokenizer.pth")
    assert load_infinity_vae(tmp_path / "tokenizer.pth", codebook_dim=32).codebook_dim == 32

    from safetensors.torch import save_file

    for model, patchify in (("infinity-2b", 0), ("infinity-8b", 1)):
        weights = fake.Infinity(vae_local=vae, seed=5, apply_spatial_patchify=patchify).state_dict()
        names = sorted(weights)
        torch.save(weights, tmp_path / f"{model}.pth")
        shards = tmp_path / f"{model}-shards"
        shards.mkdir()
        save_file({k: weights[k] for k in names[:1]}, str(shards / "model-00001.safetensors"))
        save_file({k: weights[k] for k in names[1:]}, str(shards / "model-00002.safetensors"))
        for source in (tmp_path / f"{model}.pth", shards):
            net = load_infinity_transformer(source, vae, model=model, device="cpu")
            assert all(torch.equal(net.state_dict()[k], weights[k]) for k in names)  # not the seed-0 init
            assert net.init_kwargs["apply_spatial_patchify"] == patchify
    with pytest.raises(ValueError, match="unknown Infinity model"):
        load_infinity_transformer(tmp_path / "infinity-2b.pth", vae, model="infinity-3b")


def test_command_line_options_build_the_encoder(fake, tmp_path):
    import argparse

    from bitmark.adapters.infinity import encoder_from_args
    from bitmark.cli.infinity_options import add_cli_arguments

    vae_module = importlib.import_module("infinity.models.bsq_vae.vae")
    path = tmp_path / "infinity_vae_d56_f8_14_patchify.pth"
    torch.save({"vae": vae_module.FakeBSQVAE(14, 8).state_dict()}, path)
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    enc = encoder_from_args(parser.parse_args(["--vae", str(path), "--resolution", "512"]))
    assert enc.patchify and enc.size == (512, 512) and len(enc.schedule) == 10
    assert enc.vae_schedule[-1] == (1, 64, 64) and enc.vae.codebook_dim == 14
    with pytest.raises(ValueError, match="--vae PATH"):
        encoder_from_args(parser.parse_args([]))


def test_image_detector_reads_images_through_the_encoder(fake, tmp_path):
    from bitmark.detectors.image_detector import ImageDetector

    with watermarked(WatermarkSampler(KEY), SCHEDULE, seed=4):
        _, idx, _ = generate(fake)
    enc = InfinityEncoder(ReplayVAE(idx, patch_size=16), SCHEDULE)
    for i in range(B):
        Image.fromarray(np.full((100, 140, 3), 40 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    rows = list(ImageDetector(enc, BitDetector(KEY), batch_size=B).detect_files(sorted(tmp_path.glob("*.png"))))
    assert len(rows) == B and all(r["is_watermarked"] for r in rows)


# ---------------------------------------------------------------------------------------------- real Infinity


def _real(module: str):
    try:
        mod = import_infinity(module)
    except InfinityNotAvailable as e:
        pytest.skip(f"real Infinity not importable: {e}")
    if Path(mod.__file__).is_relative_to(FAKE_ROOT):
        pytest.skip("only the stand-in is importable")
    return mod


def _env_file(name: str) -> Path:
    value = os.environ.get(name)
    if not value or not Path(value).exists():
        pytest.skip(f"set {name} to a checkpoint you have to run this test")
    return Path(value)


def test_real_square_schedules_match_infinitys_table():
    table = _real("infinity.utils.dynamic_resolution")
    for name, pixels in (("0.06M", 256), ("0.25M", 512), ("0.60M", 768), ("1M", 1024)):
        entry = table.dynamic_resolution_h_w[1.0][name]
        assert schedule_grids(pixels) == [(h, w) for _, h, w in entry["scales"]]
        assert tuple(entry["pixel"]) == (pixels, pixels)


def test_real_sampling_function_is_wrapped_and_restored():
    module = _real("infinity.models.infinity")
    original = sampling(module)
    with watermarked(WatermarkSampler(KEY), [(1, 2, 2)], seed=0, module=module) as run:
        idx = sampling(module)(torch.randn(2, 4 * 32, 2), top_k=900, top_p=0.97, rng=None, num_samples=1)
    assert sampling(module) is original and idx.shape == (2, 128, 1) and run.pyramid[0].shape == (2, 2, 2, 32)


def test_real_vae_encodes_images():
    path = _env_file("BITMARK_INFINITY_VAE")
    _real("infinity.models.bsq_vae.vae")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    enc = InfinityEncoder.from_checkpoint(path, 256, device=device)
    ramp = np.linspace(0, 255, 300 * 400 * 3).reshape(300, 400, 3).astype(np.uint8)
    pyramid = enc.encode(ramp)
    d = enc.vae.codebook_dim * (4 if enc.patchify else 1)
    assert [tuple(t.shape) for t in pyramid] == [(1, h, w, d) for h, w in enc.schedule]
    assert all(torch.equal(a, b) for a, b in zip(pyramid, enc.encode(Image.fromarray(ramp))))


def test_real_generation_is_detected_from_pixels():
    """Needs a GPU, Infinity-2B, its VAE, flan-t5-xl and Infinity's tools/ on the path."""
    model_path, vae_path = _env_file("BITMARK_INFINITY_MODEL"), _env_file("BITMARK_INFINITY_VAE")
    t5_path = _env_file("BITMARK_INFINITY_T5")
    if not torch.cuda.is_available():
        pytest.skip("Infinity's generator needs a GPU")
    try:
        tools = importlib.import_module("tools.run_infinity")
    except ImportError as e:
        pytest.skip(f"Infinity's tools/run_infinity.py not importable: {e}")
    vae = load_infinity_vae(vae_path, device="cuda")
    net = load_infinity_transformer(model_path, vae, model="infinity-2b", device="cuda")
    tokenizer, text_encoder = tools.load_tokenizer(t5_path=str(t5_path))
    schedule = infinity_schedule(1024)
    enc = InfinityEncoder(vae, schedule)
    verdicts = []
    for sampler in (WatermarkSampler(KEY), PlainSampler()):
        with watermarked(sampler, schedule, seed=0):
            img = tools.gen_one_img(net, vae, tokenizer, text_encoder, "a red fox in the snow", cfg_list=3.0,
                                    tau_list=0.5, scale_schedule=schedule, cfg_insertion_layer=[0], vae_type=32,
                                    g_seed=0)
        verdicts.append(BitDetector(KEY).detect(enc.encode(img.cpu(), bgr=True)).is_watermarked[0])
    assert verdicts == [True, False]
