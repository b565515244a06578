"""The shipped models, loaded from the safetensors + JSON cards in `bitmark/models/weights` (no network, no
training). A name ("photos") means the shipped file DATA-KIND; a path means that weights file; a folder means
the one *-KIND file in it (so `--data runs/photos64` finds each kind of a set trained into one folder)."""

from __future__ import annotations

from pathlib import Path

from bitmark.models.store import load_card, load_weights

WEIGHTS_DIR = Path(__file__).parent / "weights"


class MissingWeights(FileNotFoundError):
    """No shipped (or given) weights at a path."""


def _path(data_or_path: str | Path, kind: str) -> Path:
    p = Path(data_or_path)
    if p.is_dir():
        found = sorted(p.glob(f"*-{kind}.safetensors"))
        if len(found) > 1:
            raise MissingWeights(f"{p} holds {len(found)} {kind} weights files ({[f.name for f in found]}): name one")
        path = found[0].with_suffix("") if found else p / f"{p.name}-{kind}"
    elif p.suffix == ".safetensors" or p.with_suffix(".json").exists():
        path = p
    else:
        path = WEIGHTS_DIR / f"{data_or_path}-{kind}"
    if not path.with_suffix(".safetensors").exists():
        shipped = sorted(f.stem for f in WEIGHTS_DIR.glob(f"*-{kind}.safetensors"))
        raise MissingWeights(
            f"no {kind} weights at {path.with_suffix('.safetensors')}; shipped: {shipped or 'none'}; "
            f"train them with: bitmark train {kind} --data {data_or_path}"
        )
    return path


def load_tokenizer(data_or_path: str | Path = "photos"):
    from bitmark.models.tokenizer import Tokenizer, TokenizerConfig

    path = _path(data_or_path, "tokenizer")
    card = load_card(path)
    return load_weights(path, Tokenizer(TokenizerConfig(**card["config"])))


def load_generator(data_or_path: str | Path = "photos", tok=None):
    """The generator and, unless given, the tokenizer its card names (it samples that tokenizer's codes)."""
    from bitmark.models.generator import Generator, GeneratorConfig

    path = _path(data_or_path, "generator")
    card = load_card(path)
    tok = tok or load_tokenizer(path.parent / card["tokenizer"])
    return load_weights(path, Generator(GeneratorConfig(tok.cfg, **card["config"]))), tok


def load_classifier(data_or_path: str | Path = "photos"):
    from bitmark.models.classifier import Classifier, ClassifierConfig

    path = _path(data_or_path, "classifier")
    return load_weights(path, Classifier(ClassifierConfig(**load_card(path)["config"])))


def load_autoencoder(data_or_path: str | Path = "photos"):
    """The independently trained autoencoder of the regeneration attack."""
    from bitmark.models.autoencoder import Autoencoder, AutoencoderConfig

    path = _path(data_or_path, "autoencoder")
    return load_weights(path, Autoencoder(AutoencoderConfig(**load_card(path)["config"])))


def detector_card(data_or_path: str | Path = "photos") -> dict | None:
    """The detector card that goes with a generator (`bitmark train detector`): its null and per-scale weights;
    None where there is none (a folder of models trained without one, a weights path with no card beside it)."""
    p = Path(data_or_path)
    if p.is_dir():
        found = sorted(p.glob("*-detector.json"))
        path = found[0] if len(found) == 1 else None
    elif p.suffix in (".safetensors", ".json") or p.with_suffix(".json").exists():
        path = p.with_name(p.with_suffix("").name.rsplit("-", 1)[0] + "-detector.json")
    else:
        path = WEIGHTS_DIR / f"{data_or_path}-detector.json"
    return load_card(path) if path is not None and path.exists() else None


def dataset_of(data_or_path: str | Path) -> str:
    """The data set behind a shipped name, a folder, or a generator weights path (its card's `data`): where a
    benchmark finds the held-out crops and the classifier of models trained elsewhere (runs/X/X)."""
    p = Path(data_or_path)
    if str(data_or_path) in ("photos", "digits") or p.is_dir():
        return str(data_or_path)
    return load_card(_path(data_or_path, "generator"))["data"]


def classes(data_or_path: str | Path = "photos", kind: str = "generator") -> list[str]:
    return load_card(_path(data_or_path, kind))["classes"]


def image_size(card: dict, path: Path | None = None) -> int:
    """The image side a card's model works at: its own field, else (a generator card) that of the tokenizer it
    names beside `path`; cards from before sizes were an option say nothing: 32."""
    size = card.get("image_size") or card.get("config", {}).get("image_size")
    if not size and path is not None and "tokenizer" in card:
        size = load_card(path.parent / card["tokenizer"]).get("config", {}).get("image_size")
    return int(size or 32)


def real_data(data_or_path: str | Path = "photos", split: str = "heldout", kind: str = "generator"):
    """The real images that model `kind` of `data_or_path` was made from, at its image size: the data set
    its card names. Benchmarks compare samples with these, so a 64x64 set must get 64x64 crops."""
    from bitmark.io.datasets import load_dataset

    path = _path(data_or_path, kind)
    card = load_card(path)
    return load_dataset(card["data"], split, image_size(card, path))
