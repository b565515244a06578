"""The bit detector the commands use by default: the model null with learned per-scale weights where the
shipped models allow it, the rule's own null otherwise.

The model null (q = the generator's own teacher-forced P(bit = 1), `bitmark.detectors.predicted`) with the
per-scale weights of the generator's detector card (`bitmark train detector`) is the most robust detector
measured on the shipped models: at δ = 2 it lifts TPR@1% after JPEG 50 from 0.77 to 0.95 and the autoencoder
regeneration from 0.35 to 0.65, and its nominal 1% test flags 0.3-1.6% of clean samples and real photos under 42
attacks (benchmarks/RESULTS.md, "The model null by default").
Both q and the weights are functions of the bits alone, never of the key, so the null stays exact.

It applies when the images are read by the shipped tokenizer whose generator the card was learned with, the
key's rule and n are the card's, and the encoder reads the generator's schedule. Anything else -- an Infinity
encoder, a bitmark-2025 key, a folder of models without a card -- gets the rule's default null, as before.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bitmark.core.keys import WatermarkKey
from bitmark.detectors.bit_detector import BitDetector

log = logging.getLogger(__name__)


def model_null_plan(key: WatermarkKey, data: str | Path = "photos") -> dict | None:
    """The detector card of `data` if it applies to `key` (else None, with the reason logged)."""
    from bitmark.models import detector_card

    card = detector_card(data)
    if card is None:
        log.info("no detector card for %s: the rule's default null", data)
        return None
    cfg = key.config
    if cfg.rule not in card["rules"] or cfg.context != card["context"]:
        log.info("the detector card of %s is for rules %s with n = %d; key %s has %s, n = %d: the rule's default null",
                 data, card["rules"], card["context"], key.key_id, cfg.rule, cfg.context)
        return None
    return card


def default_detector(key: WatermarkKey, fpr: float = 0.01, data: str | Path | None = "photos", encoder=None,
                     **options) -> BitDetector:
    """A `BitDetector` for images read by the shipped tokenizer of `data`: the model null and the card's weights
    when they apply (see the module), else the rule's default null. data=None: images read by another encoder
    (no generator to predict with). `encoder`, if given, must be a tokenizer of the generator's schedule for the
    model null to apply. `options` go to `BitDetector` (scales, rule / context / delta assertions)."""
    card = None if data is None else model_null_plan(key, data)
    if card is None:
        return BitDetector(key, fpr=fpr, **options)
    from bitmark.detectors.predicted import GeneratorPredictor
    from bitmark.models import load_generator

    gen = load_generator(data)[0]
    schedule = list(gen.cfg.tokenizer.schedule)
    read = schedule if encoder is None else list(getattr(getattr(encoder, "cfg", None), "schedule", ()))
    if not schedule == read == card["schedule"]:
        log.info("the detector card of %s was learned for schedule %s, its generator has %s, the encoder %s: the rule's "
                 "default null", data, card["schedule"], schedule, read)
        return BitDetector(key, fpr=fpr, **options)
    return BitDetector(key, fpr=fpr, null="model", weights=card["scale_weights"], predictor=GeneratorPredictor(gen), **options)
