"""Optional dependencies (pyproject's extras) imported through one door, so a missing one is one clear line.

    plt = require("matplotlib.pyplot", extra="plots", purpose="the benchmark's figures")

raises `MissingExtra` ("matplotlib is not installed (needed for the benchmark's figures): pip install
'bitmark[plots]'"),
which the command line turns into exit code 2 with that line and no traceback. It is an ImportError, so
code that already falls back on ImportError keeps working.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# the distribution each optional top-level module comes from (pip names differ from import names)
DISTRIBUTIONS = {
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "matplotlib": "matplotlib",
    "imwatermark": "invisible-watermark",
    "onnxruntime": "onnxruntime",
}


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message says which extra installs it."""

    def __init__(self, module: str, extra: str, purpose: str = ""):
        top = module.split(".")[0]
        package = DISTRIBUTIONS.get(top, top)
        why = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"{package} is not installed{why}: pip install 'bitmark[{extra}]'")
        self.module, self.extra, self.package = module, extra, package


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import `module` or raise MissingExtra naming `pip install 'bitmark[extra]'`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(module, extra, purpose) from e


def missing(module: str, extra: str, purpose: str = "") -> str | None:
    """None when `module` imports, else the MissingExtra message (for optional parts that are skipped)."""
    try:
        require(module, extra, purpose)
    except MissingExtra as e:
        return str(e)
    return None


def pyplot(purpose: str = "plots"):
    """matplotlib.pyplot on the file-only Agg backend (benchmarks write PNGs, never open windows)."""
    matplotlib = require("matplotlib", "plots", purpose)
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "plots", purpose)
