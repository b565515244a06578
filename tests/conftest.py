import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(1)  # small tensors: one thread is much faster on this machine


@pytest.fixture
def key():
    from bitmark import WatermarkKey

    return WatermarkKey.generate()
