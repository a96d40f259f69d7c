"""Small inline SVG charts for the report: a histogram, a line chart and bars with error bars.

Each function returns one `<svg>` element as a string; nothing is loaded from anywhere at view time.
"""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 44
ACCENT = "#2f6db5"


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def _ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = max((hi - lo) / n, 1.0) if integer else (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


class _Frame:
    """Maps data coordinates into the plot area and draws the axes."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float):
        self.x0, self.x1 = x0, (x1 if x1 > x0 else x0 + 1)
        self.y0, self.y1 = y0, (y1 if y1 > y0 else y0 + 1)

    def x(self, v: float) -> float:
        return LEFT + (v - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def y(self, v: float) -> float:
        return HEIGHT - BOTTOM - (v - self.y0) / (self.y1 - self.y0) * (HEIGHT - TOP - BOTTOM)

    def axes(self, xlabel: str, ylabel: str, xticks: bool = True, integer_y: bool = False) -> list[str]:
        parts = [
            f'<line class="axis" x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}"/>',
            f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}"/>',
        ]
        for t in _ticks(self.y0, self.y1, integer=integer_y):
            y = self.y(t)
            parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
            parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
        if xticks:
            for t in _ticks(self.x0, self.x1):
                x = self.x(t)
                parts.append(
                    f'<text class="tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{_fmt(t)}</text>'
                )
        parts.append(
            f'<text class="label" x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 6}" '
            f'text-anchor="middle">{escape(xlabel)}</text>'
        )
        parts.append(
            f'<text class="label" x="14" y="{(TOP + HEIGHT - BOTTOM) / 2:.0f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {(TOP + HEIGHT - BOTTOM) / 2:.0f})">{escape(ylabel)}</text>'
        )
        return parts


def _svg(title: str, parts: list[str], kind: str) -> str:
    body = "\n".join(parts)
    return (
        f'<svg class="chart {kind}" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>\n{body}\n</svg>"
    )


def histogram_bins(values: list[float], bins: int = 20) -> list[tuple[float, float, int]]:
    """(low, high, count) for equal-width bins over the values' range."""
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi == lo:
        return [(lo, lo + 1, len(values))]
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    return [(lo + i * width, lo + (i + 1) * width, c) for i, c in enumerate(counts)]


def histogram(values: list[float], title: str, xlabel: str, bins: int = 20) -> str:
    hist = histogram_bins(values, bins)
    if not hist:
        return ""
    f = _Frame(hist[0][0], hist[-1][1], 0, max(c for _, _, c in hist))
    parts = f.axes(xlabel, "count", integer_y=True)
    for lo, hi, c in hist:
        x, w = f.x(lo), max(f.x(hi) - f.x(lo) - 1, 1)
        y = f.y(c)
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{HEIGHT - BOTTOM - y:.1f}" '
            f'fill="{ACCENT}"><title>{_fmt(lo)}-{_fmt(hi)}: {c}</title></rect>'
        )
    return _svg(title, parts, "histogram")


def line_chart(points: list[tuple[float, float]], title: str, xlabel: str, ylabel: str) -> str:
    if not points:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    pad = (max(ys) - min(ys)) * 0.08 or abs(max(ys)) * 0.05 or 1.0
    f = _Frame(min(xs), max(xs), min(ys) - pad, max(ys) + pad)
    parts = f.axes(xlabel, ylabel)
    path = " ".join(f"{'M' if i == 0 else 'L'}{f.x(x):.1f},{f.y(y):.1f}" for i, (x, y) in enumerate(points))
    parts.append(f'<path class="line" d="{path}" fill="none" stroke="{ACCENT}" stroke-width="2"/>')
    for x, y in points:
        parts.append(
            f'<circle class="point" cx="{f.x(x):.1f}" cy="{f.y(y):.1f}" r="2.5" fill="{ACCENT}">'
            f"<title>{_fmt(x)}: {y:.4g}</title></circle>"
        )
    return _svg(title, parts, "line-chart")


def error_bars(items: list[tuple[str, float, float]], title: str, ylabel: str, ymax: float = 100.0) -> str:
    """One bar per (label, value, stderr), with a +-stderr whisker."""
    if not items:
        return ""
    top = max([ymax] + [v + e for _, v, e in items])
    f = _Frame(0, len(items), 0, top)
    parts = f.axes("", ylabel, xticks=False)
    slot = (WIDTH - LEFT - RIGHT) / len(items)
    for i, (label, value, err) in enumerate(items):
        x = LEFT + i * slot + slot * 0.2
        w = slot * 0.6
        y = f.y(value)
        cx = x + w / 2
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{HEIGHT - BOTTOM - y:.1f}" '
            f'fill="{ACCENT}"><title>{escape(label)}: {value:.1f} ± {err:.1f}</title></rect>'
        )
        lo, hi = f.y(max(value - err, 0)), f.y(value + err)
        parts.append(
            f'<path class="whisker" d="M{cx:.1f},{lo:.1f} L{cx:.1f},{hi:.1f} M{cx - 6:.1f},{lo:.1f} '
            f'L{cx + 6:.1f},{lo:.1f} M{cx - 6:.1f},{hi:.1f} L{cx + 6:.1f},{hi:.1f}" stroke="#222" '
            'stroke-width="1.5" fill="none"/>'
        )
        parts.append(
            f'<text class="tick" x="{cx:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{escape(label)}</text>'
        )
        parts.append(f'<text class="value" x="{cx:.1f}" y="{hi - 5:.1f}" text-anchor="middle">{value:.1f}</text>')
    return _svg(title, parts, "error-bars")


def hbars(items: list[tuple[str, int]], title: str) -> str:
    """Horizontal bars, one per (label, count): rejections by reason."""
    if not items:
        return ""
    row = 22
    height = TOP + row * len(items) + 8
    label_w = 230
    peak = max(c for _, c in items) or 1
    parts = []
    for i, (label, count) in enumerate(items):
        y = TOP + i * row
        w = (WIDTH - label_w - 60) * count / peak
        short = label if len(label) <= 36 else label[:35] + "…"
        parts.append(f'<text class="tick" x="{label_w - 8}" y="{y + 14}" text-anchor="end">{escape(short)}</text>')
        parts.append(
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row - 6}" '
            f'fill="{ACCENT}"><title>{escape(label)}: {count}</title></rect>'
        )
        parts.append(f'<text class="value" x="{label_w + w + 6:.1f}" y="{y + 14}">{count}</text>')
    body = "\n".join(parts)
    return (
        f'<svg class="chart hbars" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>\n'
        f"{body}\n</svg>"
    )
