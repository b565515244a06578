"""Progress off a terminal is periodic plain lines on stderr; on a terminal, log lines do not land inside the
bar (issue 16, "Progress")."""

import io
import logging
import sys

import pytest
import torch

from bitmark.io import progress as progress_module
from bitmark.io.progress import TqdmHandler, progress
from bitmark.training.loop import TrainConfig, train


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_long_loop_off_a_terminal_prints_lines(tmp_path, monkeypatch, capsys):
    """The training loop (a real one, 3 steps) with the line interval at 0: one plain line per step."""
    monkeypatch.setattr(progress_module, "LINE_SECONDS", 0.0)
    model = torch.nn.Linear(2, 1)

    def loss_fn(m, step, rng):
        loss = m(torch.ones(1, 2)).pow(2).sum()
        return loss, {"loss": loss.item()}

    train(model, loss_fn, TrainConfig(steps=3, batch_size=1, lr=1e-3, seed=0), tmp_path, desc="fit")
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and lines and all(line.startswith("fit: ") for line in lines)
    assert "3/3" in lines[-1]


def test_a_short_loop_off_a_terminal_stays_quiet(capsys):
    for _ in progress(range(50), desc="quick"):
        pass
    assert capsys.readouterr().err == ""  # under LINE_SECONDS: nothing to report


def test_disabled_bars_are_silent(monkeypatch, capsys):
    monkeypatch.setattr(progress_module, "LINE_SECONDS", 0.0)
    assert list(progress(range(3), desc="x", enabled=False)) == [0, 1, 2]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("handler_class", [TqdmHandler, logging.StreamHandler])
def test_log_lines_do_not_break_a_terminal_bar(monkeypatch, handler_class):
    """On a terminal a record written through tqdm starts its own line; a plain StreamHandler would append it
    to the bar's text (the contrast that shows the check can fail)."""
    screen = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", screen)
    handler = handler_class() if handler_class is TqdmHandler else handler_class(screen)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("test_progress")
    log.addHandler(handler)
    log.propagate = False
    try:
        bar = progress(desc="work", total=3)
        bar.update(1)
        log.warning("hello from the log")
        bar.update(2)
        bar.close()
    finally:
        log.removeHandler(handler)
    lines = [line.split("\r")[-1] for line in screen.getvalue().split("\n")]
    if handler_class is TqdmHandler:
        assert "hello from the log" in lines
    else:
        assert "hello from the log" not in lines and any(line.endswith("hello from the log") for line in lines)
