"""Which torch device a job trains and measures on, from the config's `device` setting."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """'auto' picks the GPU when one is present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but torch sees no GPU")
    return torch.device(name)
