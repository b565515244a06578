import pytest
import torch

torch.set_num_threads(1)  # small tensors: one thread is much faster on this machine (DESIGN §5)


@pytest.fixture(scope="session")
def models():
    """The shipped generator and its tokenizer, loaded once."""
    from bitmark.models import load_generator

    return load_generator("photos")
