"""The embedded default models (tokenizer, generator, classifier, autoencoder), their weights files and the
loaders of the shipped weights in `bitmark/models/weights`:

    from bitmark import models
    gen, tok = models.load_generator("photos"); clf = models.load_classifier("photos")
"""

from bitmark.models.shipped import (
    WEIGHTS_DIR,
    MissingWeights,
    classes,
    dataset_of,
    detector_card,
    load_autoencoder,
    load_classifier,
    load_generator,
    load_tokenizer,
    real_data,
)

__all__ = ["WEIGHTS_DIR", "MissingWeights", "classes", "dataset_of", "detector_card", "load_autoencoder", "load_classifier", "load_generator", "load_tokenizer", "real_data"]
