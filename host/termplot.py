"""Live plots of ``watch`` in a plain terminal: sparklines per sensor channel, bars per class.

Why text and not a window: the console is used over SSH, on a Raspberry Pi's own screen
and in a gallery's back office; Unicode block characters work in every modern terminal
and need nothing installed. The panel redraws in place (cursor up + clear line), so the
scroll-back is not flooded at 20 Hz.
"""
from __future__ import annotations

import collections
import math

SPARKS = "▁▂▃▄▅▆▇█"
EIGHTHS = " ▏▎▍▌▋▊▉█"


def sparkline(values, lo: float | None = None, hi: float | None = None) -> str:
    """One character per value, scaled between ``lo`` and ``hi`` (default: the data's own)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return ""
    lo = min(vals) if lo is None else lo
    hi = max(vals) if hi is None else hi
    span = hi - lo
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(" ")
            continue
        x = 0.0 if span <= 0 else (min(max(v, lo), hi) - lo) / span
        out.append(SPARKS[min(int(x * len(SPARKS)), len(SPARKS) - 1)])
    return "".join(out)


def bar(fraction: float, width: int) -> str:
    """A horizontal bar ``width`` cells wide filled to ``fraction`` (eighth-cell precision)."""
    if not math.isfinite(fraction):
        fraction = 0.0
    eighths = int(round(min(max(fraction, 0.0), 1.0) * width * 8))
    full, part = divmod(eighths, 8)
    text = "█" * full + (EIGHTHS[part] if part else "")
    return text.ljust(width)


class WatchPanel:
    """Keeps the recent history of each channel and renders the panel as lines."""

    def __init__(self, history: int = 40, bar_width: int = 24):
        self.history, self.bar_width = history, bar_width
        self.series: dict[str, collections.deque] = {}
        self.probs: dict[str, float] = {}
        self.mood = ""
        self.t = 0.0
        self.lines_drawn = 0

    def update(self, sample: dict) -> None:
        """``sample`` is a watch event's data: {"t", "values": {ch: v}, "probs": {label: p}, "mood"}."""
        self.t = float(sample.get("t") or 0.0)
        for name, v in (sample.get("values") or {}).items():
            self.series.setdefault(name, collections.deque(maxlen=self.history)).append(
                float(v) if isinstance(v, (int, float)) else None)
        self.probs = {k: float(v) for k, v in (sample.get("probs") or {}).items()
                      if isinstance(v, (int, float))}
        self.mood = str(sample.get("mood") or "")
        if sample.get("gesture"):
            self.mood += f"  (gesture: {sample['gesture']})"

    def render(self) -> list[str]:
        width = max([len(n) for n in list(self.series) + list(self.probs)] + [4])
        lines = [f"t={self.t:9.2f} s   mood: {self.mood}"]
        for name, dq in self.series.items():
            last = dq[-1]
            shown = f"{last:7.3f}" if last is not None else "      -"
            # sensor channels are encoded roughly 0..1 (pads up to 2): a fixed scale shows
            # the real size of a touch instead of magnifying noise
            hi = max(1.0, max((v for v in dq if v is not None), default=1.0))
            lines.append(f"{name:<{width}} {shown} {sparkline(dq, 0.0, hi)}")
        if self.probs:
            best = max(self.probs, key=self.probs.get)
            for label, p in self.probs.items():
                mark = "◀" if label == best else " "
                lines.append(f"{label:<{width}} {p:7.3f} {bar(p, self.bar_width)}{mark}")
        return lines

    def draw(self, write) -> None:
        """Redraw in place: move up over the previous panel, then overwrite each line."""
        lines = self.render()
        out = []
        if self.lines_drawn:
            out.append(f"\x1b[{self.lines_drawn}F")
        out += [f"\x1b[2K{line}\n" for line in lines]
        if self.lines_drawn > len(lines):
            out += ["\x1b[2K\n"] * (self.lines_drawn - len(lines))
        self.lines_drawn = max(self.lines_drawn, len(lines))
        write("".join(out))
