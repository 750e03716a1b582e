"""The progress display while files are copied: one line redrawn on a terminal, a
line per file otherwise."""

import sys
import time

from .base import _human


class Progress:
    """Per file and bytes. On a TTY one line redrawn in place; otherwise a plain line
    per file when it is done (logs, CI, pipes)."""

    BAR = 24

    def __init__(self, total_files, total_bytes, stream=None):
        self.stream = stream or sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.total_files, self.total_bytes = total_files, total_bytes
        self.done_bytes = 0
        self.index = 0
        self.item = None
        self.width = 0
        self.t0 = time.monotonic()

    def start(self, item):
        self.index += 1
        self.item = item
        self.update(0, item.size)

    def update(self, written, size):
        if not self.tty:
            return
        total = self.done_bytes + written
        frac = min(1.0, total / float(self.total_bytes)) if self.total_bytes else 1.0
        fill = int(frac * self.BAR)
        name = self.item.dest if len(self.item.dest) <= 34 else "..." + self.item.dest[-31:]
        line = "[%d/%d] %-34s %3d%%  [%s%s] %s / %s" % (
            self.index,
            self.total_files,
            name,
            100 * written // size if size else 100,
            "#" * fill,
            "-" * (self.BAR - fill),
            _human(total),
            _human(self.total_bytes),
        )
        pad = max(0, self.width - len(line))
        self.width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()

    def end(self):
        if self.tty:
            self.update(self.item.size, self.item.size)
        self.done_bytes += self.item.size
        if not self.tty:
            self.stream.write(
                "[%d/%d] %s  %d bytes  (%s / %s)\n"
                % (
                    self.index,
                    self.total_files,
                    self.item.dest,
                    self.item.size,
                    _human(self.done_bytes),
                    _human(self.total_bytes),
                )
            )
            self.stream.flush()

    def finish(self):
        if self.tty:
            self.stream.write("\n")
        dt = time.monotonic() - self.t0
        self.stream.write(
            "copied %d files, %s in %.1f s\n" % (self.total_files, _human(self.total_bytes), dt)
        )
        self.stream.flush()
