"""Resynchronisation: estimate a crop, flip, rotation or aspect change, undo it, then test the mark.

The default rule salts every bit by its token's grid position, so any move of the token grid (a crop
resized back, a flip, a rotation) puts every token on another position and the mark is lost. Undoing the
move to the pixel brings it back, but a blind search over thousands of moves pays for itself twice: an
encoding per candidate, and a multiple-testing correction that also raises the bar for images that were
never moved (JPEG, noise).

Two stages keep both costs small:

1. **Estimate the move without the key.** The shipped tokenizer's decoder adds, per latent cell, a linear
   4×4 pixel patch (its `decoder_skip` path), so every image it produced carries a texture that lies in a
   32-dimensional subspace of the 48-dimensional patch space -- on the cell grid only. For each candidate
   inverse move, the share of the (patch-mean-removed) energy of the undone image that falls in that
   subspace (`grid_score`) peaks where the cell grid is back in place. It needs only matrix products
   (416 crop boxes, each also mirrored, per image) and never sees the key. It cannot tell whole-cell
   shifts apart (every cell carries the same kind of texture), so crop offsets are estimated modulo the
   4-px cell. Measured on 32 marked samples: the right box (modulo the cell) for 26-30 of 32 after centre
   crops 0.9-0.5, the mirror for 28 of 32 after a flip, the un-moved frame for 26 of 32 un-attacked. On the
   previous shipped tokenizer it ranked rotations poorly; on the channel-robust one it ranks them well enough
   that testing its best two of `angles` keeps TPR 0.99-1.00 after rotations of 5-15 degrees (the
   robustness run in benchmarks/RESULTS.md, "Resynchronisation by default").
2. **Test a few candidates with the key.** The best crop and the best aspect change (each mirrored or
   not) are undone and encoded once each; a crop's whole-cell offsets are then tried by shifting the
   latent grid (the encoder is a conv net of stride 4, so moving the content by 4 px moves its latent by
   one cell), which costs a re-quantisation, not an encoding; and the two rotations are undone and
   encoded. An undone crop is scored on the tokens inside its box only: outside it the frame holds
   repeated edge pixels, whose bits are noise (a mask chosen without the key keeps the null exact).

The p-value: conditional on the image, the candidate family is fixed (stage 1 never sees the key), and
each candidate's statistic has the detector's own null. So a weighted Bonferroni is valid: the
un-moved image is tested at level `weight · fpr` and the H search candidates at `(1 − weight) · fpr / H`;
reported p = min(1, p_identity / weight, H · p_best / (1 − weight)). When stage 1 ranks the un-moved
image first, the family is the un-moved image alone and p is the plain detector's p: an image whose
grid is in place pays nothing for the search. JPEG, blur and WebP remove the texture, though, so stage 1
sends most such images to the search, where they are tested at weight · fpr.

On by default in `bitmark detect`, `bitmark scan`, `WatermarkFilter` and `make_image_detector` (`--no-resync`,
resync=False: the plain detector): on the shipped models it costs at most 0.004 TPR@1% on every non-geometric
attack of the robustness benchmark, whose ceiling for a default is 0.02 (benchmarks/RESULTS.md,
"Resynchronisation by default").
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bitmark.detectors.bit_detector import BitDetector, Detection
from bitmark.detectors.image_detector import ImageDetector
from bitmark.io.images import fit

log = logging.getLogger(__name__)
_TOKENIZER = ("encode_latent", "quantizer", "decoder_skip", "patch")  # what the stage needs of the encoder


@dataclass(frozen=True)
class Move:
    """An inverse move: mirror the image (`flip`), then shrink it into `box` = (width, height, left, top) of
    the frame, where a crop took the content from (None: the whole frame) -- or rotate it back by `angle`
    degrees about the centre."""

    flip: bool = False
    box: tuple[int, int, int, int] | None = None
    angle: float = 0.0

    def __str__(self) -> str:
        parts = ["flip"] if self.flip else []
        if self.box is not None:
            w, h, left, top = self.box
            parts.append(f"crop {w}x{h}+{left}+{top}")
        if self.angle:
            parts.append(f"rotate {self.angle:+g}")
        return " ".join(parts) or "none"

    def is_identity(self, size: int) -> bool:
        return not self.flip and not self.angle and self.box in (None, (size, size, 0, 0))

    def undo(self, x: torch.Tensor) -> torch.Tensor:
        """This move undone on images x (B, 3, size, size) in [0, 1]."""
        size = x.shape[-1]
        x = x.flip(-1) if self.flip else x
        if self.angle:
            grid = rotation_grid(size, [self.angle]).expand(len(x), -1, -1, -1)
            return F.grid_sample(x, grid, mode="bicubic", padding_mode="zeros", align_corners=False).clamp(0, 1)
        w, h, left, top = self.box or (size, size, 0, 0)
        return (undo_matrix(size, h, top) @ x @ undo_matrix(size, w, left).T).clamp(0, 1)


@lru_cache(maxsize=None)
def lanczos_matrix(size: int, side: int) -> torch.Tensor:
    """(side, size): Pillow's Lanczos resize of a length-`size` signal to `side` samples, as a matrix."""
    impulses = np.eye(size, dtype=np.float32)
    cols = [np.asarray(Image.fromarray(impulses[:, i : i + 1]).resize((1, side), Image.Resampling.LANCZOS))[:, 0]
            for i in range(size)]
    return torch.from_numpy(np.stack(cols, 1))


@lru_cache(maxsize=None)
def undo_matrix(size: int, side: int, offset: int) -> torch.Tensor:
    """(size, size): shrink a signal to `side` samples and place it at `offset`, edge samples repeated outside."""
    rows = torch.arange(size).sub(offset).clamp(0, side - 1)
    return lanczos_matrix(size, side)[rows]


class Candidates:
    """Stage-1 hypotheses (crops: square ones, and one-side ones for aspect changes) for one image size,
    with their resampling operators built once.

    Moves are listed unmirrored only: the score of "mirror, then undo move m" equals the score of "undo the
    mirrored move m'" measured with a mirrored basis (`grid_score` returns both), and m' lies in the same
    set, because offsets are taken modulo the cell and the mirror maps the cell grid onto itself.

    Every score is compared with a baseline, the mean score of the same move with the content shifted by
    half a cell in x, y and both: a wrong sub-cell phase keeps the image's smoothness but loses the texture
    alignment, so `contrast` = score − baseline compares crops of different sides fairly.
    """

    def __init__(self, size: int, cell: int, min_side: float = 0.5, min_aspect: float = 0.7):
        self.size, self.cell = size, cell
        half = cell // 2
        keys: list[tuple[int, int, int, int]] = []  # boxes (width, height, left, top), left and top < cell
        for side in range(size, math.ceil(min_side * size) - 1, -1):
            keys += [(side, side, dx, dy) for dy in range(cell) for dx in range(cell)]
        for side in range(size - 1, math.ceil(min_aspect * size) - 1, -1):
            keys += [(side, size, dx, dy) for dy in (0, half) for dx in range(cell)]
            keys += [(size, side, dx, dy) for dx in (0, half) for dy in range(cell)]
        index = {k: i for i, k in enumerate(keys)}
        self.keys = keys
        self.partners = torch.tensor([[index[(w, h, (dx + sx) % cell, (dy + sy) % cell)]
                                       for sx, sy in ((0, 0), (half, 0), (0, half), (half, half))]
                                      for w, h, dx, dy in keys])
        # what a search may pick: square boxes at every phase; one-side boxes unshifted along the full side
        self.eligible = torch.tensor([w == h or (dy == 0 if h == size else dx == 0) for w, h, dx, dy in keys])
        self.square = torch.tensor([w == h for w, h, _, _ in keys])
        xs, ys = sorted({(k[0], k[2]) for k in keys}), sorted({(k[1], k[3]) for k in keys})
        self.ax = torch.stack([undo_matrix(size, w, left) for w, left in xs]).transpose(1, 2).contiguous()
        self.ay = torch.stack([undo_matrix(size, h, top) for h, top in ys])
        self.ix = torch.tensor([xs.index((k[0], k[2])) for k in keys])
        self.iy = torch.tensor([ys.index((k[1], k[3])) for k in keys])
        inside = torch.zeros(len(keys), 1, size, size)
        for i, (w, h, dx, dy) in enumerate(keys):
            inside[i, 0, dy : dy + h, dx : dx + w] = 1
        self.cells = (-F.max_pool2d(-inside, cell)).flatten(1)  # 1 for cells wholly inside the box

    def __len__(self) -> int:
        return len(self.keys)

    def undo(self, x: torch.Tensor) -> torch.Tensor:
        """Every box undone on one image x (3, size, size) in [0, 1]: (len(self), 3, size, size)."""
        rows = self.ay.unsqueeze(1) @ x.unsqueeze(0)  # (Ky, 3, H, W)
        return (rows[self.iy] @ self.ax[self.ix].unsqueeze(1)).clamp_(0, 1)

    def contrast(self, scores: torch.Tensor) -> torch.Tensor:
        """(..., len(self)) scores minus each move's half-cell-shifted baseline."""
        return scores - scores[..., self.partners].mean(-1)

    def move(self, i: int, flip: bool) -> Move:
        """Candidate i as a Move; mirrored, a box is reflected (its offset modulo the cell is what counts)."""
        w, h, dx, dy = self.keys[i]
        if flip:
            dx = (self.size - w - dx) % self.cell
        return Move(flip, None if (w, h, dx, dy) == (self.size, self.size, 0, 0) else (w, h, dx, dy))


def inside(boxes: Sequence[tuple[int, int, int, int] | None], size: int, grid: int) -> torch.Tensor:
    """(len(boxes), grid, grid) bool: the tokens of a grid x grid scale at least half inside each box (width,
    height, left, top) of a size x size frame; all of them for None. Outside a box an undone crop holds only
    repeated edge pixels, whose bits are noise: scoring them dilutes the mark (crop 0.5 undone exactly: mean z 4.4
    over every token, 7.3 inside the box; `python -m bitmark.benchmarks.resync_oracle`)."""
    return torch.stack([_inside(box, size, grid) for box in boxes])


@lru_cache(maxsize=4096)
def _inside(box: tuple[int, int, int, int] | None, size: int, grid: int) -> torch.Tensor:
    if box is None:
        return torch.ones(grid, grid, dtype=torch.bool)
    w, h, left, top = box
    edges = torch.arange(grid + 1, dtype=torch.float64) * size / grid
    fx = (edges[1:].clamp(max=left + w) - edges[:-1].clamp(min=left)).clamp(min=0) * grid / size
    fy = (edges[1:].clamp(max=top + h) - edges[:-1].clamp(min=top)).clamp(min=0) * grid / size
    return torch.outer(fy, fx) >= 0.5


def rotation_grid(size: int, angles: Sequence[float]) -> torch.Tensor:
    """Sampling grids that rotate back by each angle (degrees, about the centre): the inverse of Pillow's
    counter-clockwise `rotate`."""
    rad = torch.tensor([-a * math.pi / 180 for a in angles], dtype=torch.float32)
    c, s, zero = torch.cos(rad), torch.sin(rad), torch.zeros(len(angles))
    theta = torch.stack([torch.stack([c, -s, zero], 1), torch.stack([s, c, zero], 1)], 1)
    return F.affine_grid(theta, [len(angles), 3, size, size], align_corners=False)


def texture_bases(decoder_skip: torch.Tensor, cell: int) -> torch.Tensor:
    """(2·m, 3·cell²): orthonormal rows spanning the complement of the decoder's per-cell texture (its
    `decoder_skip` columns), as is (first m rows) and mirrored left-right (last m). The complement is the
    smaller space (48 − 32 = 16 dimensions here), so measuring the energy outside the texture is cheaper."""
    D = decoder_skip.detach().reshape(decoder_skip.shape[0], -1).double()  # (3·cell², d), pixel_shuffle order
    out = []
    for m in (D, D.reshape(3, cell, cell, -1).flip(2).reshape(D.shape)):
        q = torch.linalg.qr(m, mode="complete")[0]
        out.append(q[:, m.shape[1]:].T)
    return torch.cat(out).float()


def grid_score(x: torch.Tensor, bases: torch.Tensor, cell: int, cells: torch.Tensor | None = None) -> torch.Tensor:
    """(2, K): for each image of x (K, 3, H, W) in [0, 1], the share of its patch energy (patch means
    removed) inside the decoder's texture space, as is and mirrored, over the cells marked in `cells`
    (K, h·w): high when the decoder's cell texture sits on the cell grid. Strided convolutions compute the
    per-cell projections without unfolding the patches."""
    channels = x.shape[1]
    y = x * 2 - 1
    centred = (bases - bases.mean(1, keepdim=True)).view(-1, channels, cell, cell)  # removes each patch's mean
    outside = F.conv2d(y, centred, stride=cell).square().flatten(2)  # (K, 2m, cells)
    m = bases.shape[0] // 2
    outside = torch.stack([outside[:, :m].sum(1), outside[:, m:].sum(1)])  # (2, K, cells)
    ones = torch.ones(1, channels, cell, cell)
    total, squares = F.conv2d(y, ones, stride=cell).flatten(1), F.conv2d(y.square(), ones, stride=cell).flatten(1)
    energy = squares - total.square() / (channels * cell * cell)
    if cells is not None:
        energy, outside = energy * cells, outside * cells
    return 1 - outside.sum(-1) / energy.sum(-1).clamp(min=1e-12)


class ResyncDetector(ImageDetector):
    """An `ImageDetector` that estimates and undoes crops, flips, rotations and aspect changes first.

    `detect` returns, per image, the fields of the candidate with the smallest corrected p-value: its own
    z_score, counts and scale tables; p_value, neg_log10_p and is_watermarked corrected for the search (module
    docstring). `detect_with_moves` also returns the move each verdict was read from.

    weight: share of the FPR kept for the un-moved image (the rest pays for the search); 1 turns the search off.
    The un-moved image is tested by `detector`; the search candidates by the same key's detector with the rule's
    default null when `detector` uses the model null (one generator pass per candidate would cost ~5 ms each).
    Each candidate's statistic still has an exact null of its own, which is all the correction needs.
    angles: the rotations stage 1 ranks (by the same texture score, on the cells clear of the black corners) once
            it finds the grid moved; the best `rotations` of them are tested with the key.
    """

    def __init__(self, encoder, detector: BitDetector, weight: float = 0.9, min_side: float = 0.5,
                 min_aspect: float = 0.7, angles: Sequence[float] = (-15, -12, -9, -6, -3, 3, 6, 9, 12, 15),
                 rotations: int = 2, batch_size: int = 64):
        super().__init__(encoder, detector, batch_size)
        if not supports(encoder):
            raise ValueError("resynchronisation needs the shipped tokenizer (its cell texture and latent grid); "
                             "use ImageDetector for other encoders")
        if not 0 < weight <= 1:
            raise ValueError(f"weight must be in (0, 1], got {weight}")
        self.size, self.cell, self.weight = encoder.cfg.image_size, encoder.patch, weight
        self.search_bits = detector if detector.null != "model" else BitDetector(detector.key, fpr=detector.fpr, scales=detector.scales)
        self.candidates = Candidates(self.size, self.cell, min_side, min_aspect)
        self.bases = texture_bases(encoder.decoder_skip.weight, self.cell)
        self.turns = [Move(angle=float(a)) for a in angles if a]
        self.rotations = rotations
        self.turn_grid = rotation_grid(self.size, [m.angle for m in self.turns]) if self.turns else None
        clear = torch.zeros(self.size // self.cell, self.size // self.cell)
        clear[1:-1, 1:-1] = 1  # a rotation by up to 15 degrees blackens only the border cells' corners
        self.clear = clear.flatten()
        c = self.candidates
        self.families = (c.eligible & c.square, c.eligible & ~c.square)  # crops, aspect changes

    def estimate(self, x: torch.Tensor) -> list[Move]:
        """Stage 1 for one image (3, size, size) in [0, 1]: [] if the un-moved image ranks first; else the
        best crop and the best aspect change (each mirrored or not), and the best-scoring rotations. Never sees the key."""
        c = self.candidates
        contrast = c.contrast(grid_score(c.undo(x), self.bases, self.cell, c.cells))  # (2, K)
        best = int(torch.where(c.eligible, contrast, -torch.inf).argmax())
        if best == 0:  # key 0 is the whole frame, unmirrored
            return []
        out = []
        for family in self.families:
            flip, i = divmod(int(torch.where(family, contrast, -torch.inf).argmax()), len(c))
            out.append(c.move(i, bool(flip)))
        return out + self.best_turns(x)

    def best_turns(self, x: torch.Tensor) -> list[Move]:
        """The `rotations` angles whose undoing puts the most texture back on the grid."""
        if not self.turns or self.rotations <= 0:
            return []
        undone = F.grid_sample(x.expand(len(self.turns), -1, -1, -1), self.turn_grid, mode="bicubic", padding_mode="zeros",
                               align_corners=False).clamp(0, 1)
        score = grid_score(undone, self.bases, self.cell, self.clear.expand(len(self.turns), -1))[0]
        return [self.turns[i] for i in score.argsort(descending=True)[: self.rotations].tolist()]

    def members(self, move: Move) -> list[tuple[int, int]]:
        """The whole-cell shifts (cells right, cells down) a crop's estimate stands for: stage 1 finds its
        offset modulo the cell only; every offset that keeps the box inside the frame is a member."""
        if move.angle or move.box is None:
            return [(0, 0)]
        w, h, left, top = move.box
        xs = list(range((self.size - w - left) // self.cell + 1)) or [0]
        ys = list(range((self.size - h - top) // self.cell + 1)) or [0]
        return [(dx, dy) for dy in ys for dx in xs]

    @torch.no_grad()
    def search(self, images: Sequence[np.ndarray]) -> "Search":
        """Both stages on uint8 RGB images of any size (fitted as the tokenizer fits them)."""
        if len(images) == 0:
            raise ValueError("no images to detect")
        from bitmark.models.tokenizer import to_unit

        parts = []
        for start in range(0, len(images), self.batch_size):
            x = to_unit([fit(np.asarray(im), self.size) for im in images[start : start + self.batch_size]])
            parts.append(self._search(x))
        return Search(_concat([p.plain for p in parts]), _concat([p.best for p in parts]),
                      np.concatenate([p.tests for p in parts]), sum((p.moves for p in parts), []))

    def detect_with_moves(self, images: Sequence[np.ndarray]) -> tuple[Detection, list[Move]]:
        return self.search(images).verdict(self.weight, self.bits.fpr)

    def detect(self, images: Sequence[np.ndarray]) -> Detection:
        return self.detect_with_moves(images)[0]

    def _search(self, x: torch.Tensor) -> "Search":
        enc, G, B = self.encoder, self.size // self.cell, len(x)
        plans = [self.estimate(xi) if self.weight < 1 else [] for xi in x]
        reps = torch.cat([x] + [m.undo(x[b : b + 1]) for b, plan in enumerate(plans) for m in plan])
        latent = enc.encode_latent(reps)  # the images first, then each image's estimated moves
        rows, owner, labels, r = [latent[:B]], [], [], B
        for b, plan in enumerate(plans):
            for m in plan:
                for dx, dy in self.members(m):  # whole-cell shifts: move the latent grid, not the pixels
                    iy, ix = (torch.arange(G) - dy).clamp(0, G - 1), (torch.arange(G) - dx).clamp(0, G - 1)
                    rows.append(latent[r][:, iy][:, :, ix].unsqueeze(0))
                    owner.append(b)
                    labels.append(_shifted(m, dx * self.cell, dy * self.cell))
                r += 1
        pyramid = enc.quantizer.quantize(torch.cat(rows))[1]
        plain = self.bits.detect([t[:B] for t in pyramid])
        owner_a = np.asarray(owner, dtype=np.int64)
        tests = np.bincount(owner_a, minlength=B)
        if not labels:
            return Search(plain, plain, tests, [Move()] * B)
        boxes = [m.box for m in labels]
        searched = self.search_bits.detect([t[B:] for t in pyramid], [inside(boxes, self.size, t.shape[1]) for t in pyramid])
        every = _concat([plain, searched])
        best = np.arange(B)  # an image without search candidates points at its own un-moved row
        for b in np.flatnonzero(tests):
            mine = np.flatnonzero(owner_a == b)
            best[b] = B + mine[searched.neg_log10_p[mine].argmax()]
        moves = [labels[j - B] if j >= B else Move() for j in best]
        return Search(plain, _rows(every, best), tests, moves)

    def _flush(self, batch) -> Iterator[dict[str, Any]]:
        """`detect_files` rows, with the move each verdict was read from (`resync`: "none" when un-moved)."""
        if not batch:
            return
        result, moves = self.detect_with_moves([image for _, image in batch])
        for (path, _), row, move in zip(batch, result.rows(), moves):
            yield {"path": str(path), **row, "resync": str(move)}


@dataclass(frozen=True)
class Search:
    """What both stages found, before the correction: the un-moved image's detection (`plain`), the best
    search candidate's (`best`; the un-moved one where there were none), how many search candidates each
    image had (`tests`, fixed by stage 1, which never sees the key) and the move of `best`."""

    plain: Detection
    best: Detection
    tests: np.ndarray
    moves: list[Move]

    def neg_log10_p(self, weight: float) -> np.ndarray:
        """-log10 of min(1, p_plain / w, H · p_best / (1 − w)); just p_plain where H = 0."""
        searched = self.tests > 0
        w = np.where(searched, weight, 1.0)
        plain = self.plain.neg_log10_p + np.log10(w)
        with np.errstate(divide="ignore"):
            best = np.where(searched, self.best.neg_log10_p - np.log10(np.maximum(self.tests, 1) / max(1 - weight, 1e-300)), -np.inf)
        return np.maximum(np.maximum(plain, best), 0.0)

    def verdict(self, weight: float, fpr: float) -> tuple[Detection, list[Move]]:
        """Per image, the fields of whichever of the two gave the smaller corrected p, with that p."""
        searched = self.tests > 0
        plain = self.plain.neg_log10_p + np.log10(np.where(searched, weight, 1.0))
        score = self.neg_log10_p(weight)
        use_best = searched & (score > np.maximum(plain, 0.0))
        d = replace(self.plain, **{k: np.where(use_best.reshape(-1, *[1] * (vars(self.plain)[k].ndim - 1)),
                                               vars(self.best)[k], vars(self.plain)[k]) for k in _arrays(self.plain)})
        d = replace(d, neg_log10_p=score, p_value=10.0**-score, is_watermarked=score >= -math.log10(fpr))
        return d, [m if u else Move() for m, u in zip(self.moves, use_best)]

def _shifted(move: Move, dx: int, dy: int) -> Move:
    w, h, left, top = move.box or (0, 0, 0, 0)
    return move if move.box is None or move.angle else replace(move, box=(w, h, left + dx, top + dy))


def _arrays(d: Detection) -> list[str]:
    return [k for k, v in vars(d).items() if isinstance(v, np.ndarray)]


def _rows(d: Detection, rows: np.ndarray) -> Detection:
    return replace(d, **{k: vars(d)[k][rows] for k in _arrays(d)})


def _concat(parts: list[Detection]) -> Detection:
    return replace(parts[0], **{k: np.concatenate([vars(p)[k] for p in parts]) for k in _arrays(parts[0])})


def supports(encoder) -> bool:
    """Whether the stage can run on this encoder: it reads the shipped tokenizer's cell texture and latent grid."""
    return all(hasattr(encoder, a) for a in _TOKENIZER)


def make_image_detector(encoder, detector: BitDetector, resync: bool = True, batch_size: int = 64) -> ImageDetector:
    """The image detector the commands use: with the resynchronisation stage (default) when the encoder is the
    shipped tokenizer, the plain `ImageDetector` otherwise or with resync=False (benchmarks/RESULTS.md,
    "Resynchronisation by default")."""
    if resync and supports(encoder):
        return ResyncDetector(encoder, detector, batch_size=batch_size)
    if resync:
        log.info("no resynchronisation for %s: it needs the shipped tokenizer", type(encoder).__name__)
    return ImageDetector(encoder, detector, batch_size)
