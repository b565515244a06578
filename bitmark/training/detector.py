"""The detector card shipped beside a generator: per-scale weights of the model null, learned once.

`bitmark train detector --data photos --install` samples marked images with a calibration key (a public
`fixed_key` that marks nothing real), passes them through a channel (JPEG 75 by default: where the scales'
evidence differs most), and learns the weights that maximise their mean z under the model null
(`bitmark.detectors.stats.scale_weights`). The weights depend on neither the key nor the image tested, so for
any key the null stays exact; they only decide how much each scale counts. The card is JSON beside the
weights (`DATA-detector.json`); `bitmark.detectors.defaults.default_detector` reads it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bitmark.evaluation.provenance import command, machine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorCalibration:
    num: int = 300  # marked calibration samples
    key_number: int = 100  # fixed_key(key_number): not the benchmarks' test key (0), not any real key
    delta: float = 2.0  # the default key's δ
    attack: str = "jpeg:75"  # the channel the weights are learned after
    seed: int = 1000  # sampling seeds from here: not the benchmarks' (0-13)
    attack_seed: int = 21


def train_detector(data: str, out: Path, cal: DetectorCalibration = DetectorCalibration()) -> dict[str, Any]:
    """Learn the model null's per-scale weights for the keyed-spatial rule and write the card to out.json."""
    from bitmark import attacks
    from bitmark.backends import EmbeddedBackend, make_sampler
    from bitmark.detectors import BitDetector, stats
    from bitmark.detectors.predicted import GeneratorPredictor
    from bitmark.evaluation.keys import fixed_key

    key = fixed_key(cal.key_number, delta=cal.delta)
    backend = EmbeddedBackend(data)
    log.info("sampling %d calibration images with key %s", cal.num, key.key_id)
    images = backend.sample(make_sampler(key), cal.num, seed=cal.seed).images
    pyramid = backend.encode(attacks.parse(cal.attack)(images, seed=cal.attack_seed))
    det = BitDetector(key, null="model", predictor=GeneratorPredictor(backend.gen))
    terms = det.scale_terms(pyramid).numpy()
    weights = stats.scale_weights(terms[1] - terms[2], terms[3])
    z = stats.weighted_z(terms[1] - terms[2], terms[3], weights)[0]
    card = {
        "kind": "detector",
        "data": data,
        "null": "model",
        "rules": [key.config.rule],
        "context": key.config.context,
        "schedule": list(backend.tok.cfg.schedule),
        "scale_weights": [round(float(w), 4) for w in weights],
        "calibration": {**asdict(cal), "key_id": key.key_id, "mean_z": float(z.mean())},
        "command": command(),
        "machine": machine(),
    }
    out = Path(out).with_suffix(".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(card, indent=2) + "\n")
    return card
