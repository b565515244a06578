"""Where a figure came from: the machine and the command line, recorded in weights cards and reports."""

from __future__ import annotations

import platform
import shlex
import sys


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    import torch

    return f"{cpu_name()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}, {platform.system()}"


def command() -> str:
    return "bitmark " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "(python api)"
