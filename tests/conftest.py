import torch

torch.set_num_threads(1)  # small tensors: one thread is much faster on this machine (DESIGN §5)
