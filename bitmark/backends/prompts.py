"""The prompt set for Infinity benchmarks: about 200 short captions written for bitmark (package data)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def load_prompts(path: str | Path | None = None) -> list[str]:
    """One prompt per non-empty line of `path` (default: bitmark's own prompts.txt); `#` lines are comments."""
    text = Path(path).read_text() if path is not None else resources.files("bitmark.backends").joinpath("prompts.txt").read_text()
    prompts = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise ValueError(f"{path or 'prompts.txt'}: no prompts")
    return prompts
