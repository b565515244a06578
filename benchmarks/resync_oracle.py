"""How much of the mark survives JPEG, a random crop and a flip even when the move is known exactly:
`OMP_NUM_THREADS=1 python -m bitmark.benchmarks.resync_oracle [--num N] [--quality Q] [--keep K] [--no-flip] [--centre]`.

The resynchronisation stage cannot read the move after JPEG (it removes the cell texture stage 1 reads), so
the chain `jpeg:Q+random_crop:K+hflip:1` defeats it. This asks the question behind that: if the inverse
move were given (flip back, shrink the content back into its box, as `Move.undo` does), what would the
plain statistic see? The share of marked samples above z = 2.326 (the one-sided 1% level, with no search
correction at all) is a ceiling for any resynchronisation of this chain with this tokenizer. The crop is
the one `random_crop` makes (`attacks.classical._crop_resize`), with its offsets drawn here so that they
are known (`--centre`: the centred one of `crop`); `--quality 0` skips JPEG, `--no-flip` the flip. Both scores
are given: over every token, and over the tokens inside the undone box only (what the stage scores).
"""

from __future__ import annotations

import argparse
import io
import json

import numpy as np

Z_1PCT = 2.326  # one-sided 1% normal quantile


def run(num: int = 300, quality: int = 75, keep: float = 0.8, flip: bool = True, centre: bool = False,
        seed: int = 5) -> dict:
    import torch
    from PIL import Image

    from bitmark.detectors import BitDetector
    from bitmark.detectors.resync import Move, inside
    from bitmark.evaluation.keys import fixed_key
    from bitmark.models import load_generator
    from bitmark.models.sampling import sample_images
    from bitmark.models.tokenizer import to_unit

    gen, tok = load_generator("photos")
    key = fixed_key(0)
    det = BitDetector(key)
    size = tok.cfg.image_size
    marked = sample_images(gen, tok, torch.arange(num) % gen.cfg.num_classes, key=key, seed=0, progress=False)[0]
    rng = np.random.default_rng(seed)
    z_all, z_inside = [], []
    for image in marked:
        im = Image.fromarray(image)
        if quality:
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=quality)
            im = Image.open(buf).convert("RGB")
        side = max(1, round(size * keep))
        fx, fy = (0.5, 0.5) if centre else (rng.random(), rng.random())
        left, top = round((size - side) * fx), round((size - side) * fy)
        moved = im.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
        if flip:
            moved = moved.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        move = Move(flip=flip, box=(side, side, left, top))
        with torch.no_grad():
            pyramid = tok.quantizer.quantize(tok.encode_latent(move.undo(to_unit([np.asarray(moved)]))))[1]
        z_all.append(float(det.detect(pyramid).z_score[0]))
        z_inside.append(float(det.detect(pyramid, [inside([move.box], size, b.shape[1]) for b in pyramid]).z_score[0]))
    z_all, z_inside = np.array(z_all), np.array(z_inside)
    chain = [f"jpeg:{quality}"] * bool(quality) + [f"{'crop' if centre else 'random_crop'}:{keep:g}"] + ["hflip:1"] * flip
    return {"chain": "+".join(chain), "num": num,
            "mean_z": round(float(z_all.mean()), 3), "mean_z_inside_box": round(float(z_inside.mean()), 3),
            "share_above_1pct": round(float(np.mean(z_all > Z_1PCT)), 3),
            "share_above_1pct_inside_box": round(float(np.mean(z_inside > Z_1PCT)), 3)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=300)
    ap.add_argument("--quality", type=int, default=75)
    ap.add_argument("--keep", type=float, default=0.8)
    ap.add_argument("--no-flip", action="store_true")
    ap.add_argument("--centre", action="store_true")
    args = ap.parse_args()
    print(json.dumps(run(args.num, args.quality, args.keep, not args.no_flip, args.centre)))
