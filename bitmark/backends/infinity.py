"""The Infinity backend: text-to-image sampling with Infinity's own loop, watermarked in place by the adapter.

Infinity's generation entry point is `model.autoregressive_infer_cfg(vae=, scale_schedule=, label_B_or_BLT=,
B=, g_seed=, cfg_list=, tau_list=, top_k=, top_p=, cfg_insertion_layer=, vae_type=, ret_img=True, ...)`; for
text models `label_B_or_BLT` is the prompt's T5 encoding packed as (features of all prompts' real tokens
concatenated, their lengths, cumulative lengths from 0 as int32, the longest length). It returns the images
as uint8 (B, H, W, 3) in BGR order; the sampled bits are recorded by `bitmark.adapters.infinity.watermarked`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from bitmark.adapters.infinity import InfinityEncoder, schedule_grids, watermarked
from bitmark.backends.base import Samples, as_rgb_uint8
from bitmark.core.pyramid import Pyramid
from bitmark.core.sampler import PlainSampler

log = logging.getLogger(__name__)


class T5PromptEncoder:
    """Prompts -> Infinity's text conditioning, with a Hugging Face T5 tokenizer and encoder (flan-t5-xl)."""

    def __init__(self, tokenizer: Any, text_encoder: Any, max_length: int = 512):
        self.tokenizer, self.text_encoder, self.max_length = tokenizer, text_encoder, max_length

    @classmethod
    def from_pretrained(cls, path: str, device: str = "cuda") -> "T5PromptEncoder":
        """Load a local T5 folder (never downloaded: pass the folder you have)."""
        try:
            from transformers import AutoTokenizer, T5EncoderModel
        except ImportError as e:
            raise ImportError("Infinity's text encoder needs `transformers` (pip install transformers sentencepiece)") from e
        tokenizer = AutoTokenizer.from_pretrained(path, legacy=True, local_files_only=True)
        dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
        encoder = T5EncoderModel.from_pretrained(path, torch_dtype=dtype, local_files_only=True)
        return cls(tokenizer, encoder.to(device).eval().requires_grad_(False))

    @torch.no_grad()
    def __call__(self, prompts: Sequence[str]) -> tuple[torch.Tensor, list[int], torch.Tensor, int]:
        device = next(self.text_encoder.parameters()).device
        tokens = self.tokenizer(text=list(prompts), max_length=self.max_length, padding="max_length",
                                truncation=True, return_tensors="pt")
        ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
        features = self.text_encoder(input_ids=ids, attention_mask=mask)["last_hidden_state"].float()
        lengths = mask.sum(dim=-1)
        packed = torch.cat([f[:n] for f, n in zip(features, lengths.tolist())])
        starts = F.pad(lengths.to(torch.int32).cumsum(0, dtype=torch.int32), (1, 0))
        return packed, lengths.tolist(), starts, int(lengths.max())


class InfinityBackend:
    """Sample Infinity with a bitmark sampler and read its images back with its VAE.

    model, vae:       Infinity's transformer and BSQ VAE (e.g. from `load_infinity_transformer` / `load_infinity_vae`).
    scale_schedule:   the schedule `[(1, h, w), ...]` passed to Infinity (for 8B the patchified one).
    prompt_encoder:   prompts -> the `label_B_or_BLT` Infinity expects (a `T5PromptEncoder` for the real models).
    prompts:          the default conditioning, cycled (default: bitmark's own 200 captions).
    cfg, tau, top_k, top_p, cfg_insertion_layer: Infinity's sampling settings (its published defaults).
    batch_size:       images per Infinity call; batch b of seed s has watermark seed (s, b) and g_seed s*1_000_003+b.
    module:           the module whose sampling function is wrapped (default: infinity.models.infinity).
    """

    kind, conditioning, retrainable = "infinity", "prompt", False

    def __init__(
        self, model: Any, vae: Any, scale_schedule: Sequence, prompt_encoder: Callable[[Sequence[str]], Any], *,
        prompts: Sequence[str] | None = None, cfg: float = 3.0, tau: float = 0.5, top_k: int = 900,
        top_p: float = 0.97, cfg_insertion_layer: Sequence[int] = (0,), batch_size: int = 4, module: Any = None,
        encoder: InfinityEncoder | None = None, description: str = "Infinity",
    ):
        from bitmark.backends.prompts import load_prompts

        self.model, self.vae, self.prompt_encoder = model, vae, prompt_encoder
        self.schedule = [(1, h, w) for h, w in schedule_grids(scale_schedule)]
        self.prompts = list(prompts) if prompts is not None else load_prompts()
        self.cfg, self.tau, self.top_k, self.top_p = cfg, tau, top_k, top_p
        self.cfg_insertion_layer, self.batch_size, self.module = list(cfg_insertion_layer), batch_size, module
        self.encoder = encoder or InfinityEncoder(vae, self.schedule)
        self.description = description

    def default_conditioning(self, n: int) -> list[str]:
        return [self.prompts[i % len(self.prompts)] for i in range(n)]

    def _generate(self, prompts: list[str], g_seed: int) -> torch.Tensor:
        S = len(self.schedule)
        device = next(iter(self.model.parameters()), torch.empty(0)).device
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext())
        with autocast:
            _, _, images = self.model.autoregressive_infer_cfg(
                vae=self.vae, scale_schedule=self.schedule, label_B_or_BLT=self.prompt_encoder(prompts), B=len(prompts),
                negative_label_B_or_BLT=None, g_seed=g_seed, cfg_list=[self.cfg] * S, tau_list=[self.tau] * S,
                top_k=self.top_k, top_p=self.top_p, cfg_sc=3, returns_vemb=1, gumbel=0, norm_cfg=False,
                cfg_insertion_layer=self.cfg_insertion_layer, vae_type=int(getattr(self.vae, "codebook_dim", 32)),
                softmax_merge_topk=-1, ret_img=True, trunk_scale=1000, gt_leak=0, inference_mode=True,
                sampling_per_bits=1,
            )
        return images

    def sample(self, sampler: PlainSampler, n: int, conditioning: Sequence[str] | None = None, seed: int = 0,
               progress: bool = True) -> Samples:
        prompts = list(conditioning) if conditioning is not None else self.default_conditioning(n)
        if len(prompts) != n or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"Infinity is conditioned on text: give {n} prompts (strings)")
        images, pyramids = [], []
        batches = range(0, n, self.batch_size)
        for b in tqdm(batches, desc="sampling infinity", leave=False, disable=not progress or None):
            part = prompts[b : b + self.batch_size]
            batch_seed = seed * 1_000_003 + b // self.batch_size
            with watermarked(sampler, self.schedule, seed=batch_seed, module=self.module) as run:
                bgr = self._generate(part, g_seed=batch_seed)
            if not run.complete or len(run.pyramids) != 1:
                raise RuntimeError(f"Infinity sampled {len(run.pyramids)} complete pyramids for one call, expected 1")
            images.append(as_rgb_uint8(bgr)[..., ::-1])  # Infinity returns BGR
            pyramids.append(run.pyramid)
        return Samples(np.ascontiguousarray(np.concatenate(images)), [torch.cat(s) for s in zip(*pyramids)], prompts)

    def encode(self, images: np.ndarray) -> Pyramid:
        return self.encoder.encode(images)

    def real_images(self, n: int, seed: int = 0) -> None:
        """Infinity has no held-out real set here: benchmarks use a second clean draw as the other negatives."""
        return None
