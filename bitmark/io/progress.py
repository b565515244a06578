"""Progress bars for every long loop of the project, and a logging handler that does not break them.

On a terminal `progress` is an ordinary tqdm bar. When stderr is not a terminal (a log file, a CI job, a
pipe) tqdm would either stay silent (``disable=None``) or write carriage returns into the log; here the bar
instead writes one plain line to stderr every `LINE_SECONDS` (nothing for loops shorter than that) and a
closing line for bars that printed, so a long quiet job still says where it is. Log records go through
`tqdm.write` (`TqdmHandler`), which lifts a terminal bar out of the way and draws it again below.
tqdm is imported when a bar or a record is made, so importing this module stays cheap (`bitmark --help`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

LINE_SECONDS = 30.0  # off a terminal: at most one progress line per bar this often


def progress(iterable: Iterable | None = None, *, desc: str, total: int | None = None, enabled: bool = True,
             **options: Any):
    """A tqdm bar over `iterable` (or a manual one of `total` steps); `enabled=False` gives a silent one.

    `options` go to tqdm (`unit`, `leave`, `initial`, ...)."""
    from tqdm import tqdm

    if not enabled:
        return tqdm(iterable, desc=desc, total=total, disable=True, **options)
    if _is_terminal(sys.stderr):
        return tqdm(iterable, desc=desc, total=total, file=sys.stderr, **options)
    return _line_bar_class()(iterable, desc=desc, total=total, file=sys.stderr, **options)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


_LINE_BAR = None


def _line_bar_class():
    """A tqdm bar that writes whole lines, at most one per LINE_SECONDS, instead of redrawing in place."""
    global _LINE_BAR
    if _LINE_BAR is None:
        from tqdm import tqdm

        class LineBar(tqdm):
            _line_t: float | None = None  # when the last line was written (the bar's start before the first)
            _lines = 0
            _last = ""

            def display(self, msg: str | None = None, pos: int | None = None) -> bool:
                if msg is not None:  # tqdm clearing its line: there is nothing to erase in a log
                    return False
                now = time.monotonic()
                if self._line_t is None:  # the refresh tqdm makes when the bar starts: stay quiet
                    self._line_t = now
                elif now - self._line_t >= LINE_SECONDS:
                    self._line_t = now
                    self._write_line()
                return True

            def clear(self, nolock: bool = False) -> None:
                pass

            def close(self) -> None:
                if not self.disable and self._lines:  # a bar that spoke says how it ended
                    self._write_line()
                self.leave = False
                super().close()

            def _write_line(self) -> None:
                line = self.format_meter(**{**self.format_dict, "ncols": 0})  # ncols 0: the counts, no bar
                if line != self._last:
                    self._lines, self._last = self._lines + 1, line
                    self.fp.write(line + "\n")
                    self.fp.flush()

        _LINE_BAR = LineBar
    return _LINE_BAR


class TqdmHandler(logging.Handler):
    """Writes log records to the stderr of the moment through `tqdm.write`, so they never land inside a bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
