"""Small server-side plots as inline SVG: lines over nights and a size-vs-error scatter, with
the gate's thresholds drawn across them and the nights of releases marked (as Grafana draws
thresholds and annotations). No JavaScript and no plotting library; the text is escaped, the
figures are numbers."""

from __future__ import annotations

import datetime as dt
import math
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 720, 250
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 28, 34
COLOURS = ("#1f5fa8", "#c2571a", "#2f8f4e", "#8a3fa0", "#7a7a7a", "#b8860b")


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    step = 10 ** math.floor(math.log10((high - low) / count))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _bytes(value: float) -> str:
    return f"{value / 1000:g} kB" if value >= 1000 else f"{value:g} B"


def _size_limit(value: float) -> str:
    """A size limit as the gate policies set it: in KiB when it is a whole number of them."""
    return f"{value / 1024:g} KiB" if value >= 1024 and value % 1024 == 0 else _bytes(value)


def _label(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.3g}"


def _padded(low: float, high: float) -> tuple[float, float]:
    """A value range with a margin; from 0 when the values sit near it."""
    margin = max((high - low) * 0.15, abs(high) * 0.02, 0.5)
    low = 0.0 if 0 <= low <= margin * 2 else low - margin
    return low, high + margin


class _Frame:
    """Maps data to pixels within the plot area, and draws the axes."""

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float], *,
                 log_x: bool = False):
        self.log_x = log_x
        self.x0, self.x1 = (math.log10(v) for v in x_range) if log_x else x_range
        self.y0, self.y1 = y_range
        if self.x1 <= self.x0:
            self.x0, self.x1 = self.x0 - 1, self.x1 + 1
        if self.y1 <= self.y0:
            self.y0, self.y1 = self.y0 - 1, self.y1 + 1

    def x(self, value: float) -> float:
        value = math.log10(value) if self.log_x else value
        return LEFT + (value - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        return HEIGHT - BOTTOM - (value - self.y0) / (self.y1 - self.y0) * (HEIGHT - TOP - BOTTOM)

    def axes(self, y_title: str, x_ticks: list[tuple[float, str]]) -> list[str]:
        parts = [f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" '
                 f'y2="{HEIGHT - BOTTOM}" class="axis"/>',
                 f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" class="axis"/>',
                 f'<text x="4" y="14" class="title">{escape(y_title)}</text>']
        for tick in _ticks(self.y0, self.y1):
            y = self.y(tick)
            parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                         'class="grid"/>')
            parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">'
                         f'{_label(tick)}</text>')
        for value, text in x_ticks:
            parts.append(f'<text x="{self.x(value):.1f}" y="{HEIGHT - BOTTOM + 16}" '
                         f'text-anchor="middle">{escape(text)}</text>')
        return parts


def _thresholds(frame: _Frame, limits: list[tuple[float, str]], *, vertical: bool = False
                ) -> list[str]:
    """A dashed line across the plot at each (value, label), the label at its end."""
    parts = []
    for value, label in limits:
        if vertical:
            x = frame.x(value)
            parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}" '
                         f'class="limit"><title>{escape(label)}: {_label(value)}</title></line>')
            parts.append(f'<text x="{x + 3:.1f}" y="{TOP - 4}" class="limit">'
                         f'{escape(label)}</text>')
        else:
            y = frame.y(value)
            parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                         f'class="limit"><title>{escape(label)}: {_label(value)}</title></line>')
            parts.append(f'<text x="{WIDTH - RIGHT - 4}" y="{y - 3:.1f}" text-anchor="end" '
                         f'class="limit">{escape(label)} {_label(value)}</text>')
    return parts


def _markers(frame: _Frame, markers: list[tuple[dt.date, str]]) -> list[str]:
    """A vertical line at each night of (night, label) within the plot's nights, its labels
    joined; written where it does not overlap the previous one (each names itself on hover)."""
    parts, free_from_x, by_night = [], -math.inf, {}
    for night, label in sorted(markers):
        by_night.setdefault(night, []).append(label)
    for night, labels in by_night.items():
        x, label = frame.x(night.toordinal()), ", ".join(labels)
        if not LEFT <= x <= WIDTH - RIGHT:
            continue
        parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}" '
                     f'class="marker"><title>{night.isoformat()}: {escape(label)}</title></line>')
        if x >= free_from_x:
            parts.append(f'<text x="{x + 2:.1f}" y="{TOP + 8}" class="marker">{escape(label)}'
                         '</text>')
            free_from_x = x + 6 + 5 * len(label)  # 9 px letters are about 5 px wide
    return parts


def _svg(parts: list[str], title: str) -> Markup:
    return Markup(f'<svg class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
                  f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
                  + "".join(parts) + "</svg>")


def _legend(names: list[str]) -> list[str]:
    parts = []
    for i, name in enumerate(names):
        y = TOP + 6 + i * 16
        parts.append(f'<rect x="{WIDTH - RIGHT + 10}" y="{y - 8}" width="10" height="10" '
                     f'fill="{COLOURS[i % len(COLOURS)]}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 24}" y="{y + 1}">{escape(name)}</text>')
    return parts


def lines_over_nights(series: dict[str, list[tuple[dt.date, float]]], *, title: str,
                      y_title: str, limits: list[tuple[float, str]] = (),
                      markers: list[tuple[dt.date, str]] = ()) -> Markup:
    """One line per named series of (night, value), a shared date axis; a threshold line per
    (value, label) of `limits` and a marker per (night, label) of `markers`."""
    points = [p for values in series.values() for p in values]
    if not points:
        return Markup('<p class="empty">nothing to plot yet</p>')
    days = [d.toordinal() for d, _ in points]
    values = [v for _, v in points] + [value for value, _ in limits]
    frame = _Frame((min(days), max(days)), _padded(min(values), max(values)))
    first, last = min(days), max(days)
    x_ticks = [(d, dt.date.fromordinal(int(d)).isoformat())
               for d in sorted({round(first + (last - first) * i / 4) for i in range(5)})]
    parts = frame.axes(y_title, x_ticks) + _markers(frame, list(markers)) \
        + _thresholds(frame, list(limits))
    for i, (_, values_of) in enumerate(series.items()):
        path = " ".join(f"{frame.x(d.toordinal()):.1f},{frame.y(v):.1f}" for d, v in values_of)
        colour = COLOURS[i % len(COLOURS)]
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                     'stroke-width="1.6"/>')
        if len(values_of) <= 40:
            parts += [f'<circle cx="{frame.x(d.toordinal()):.1f}" cy="{frame.y(v):.1f}" r="2.5" '
                      f'fill="{colour}"/>' for d, v in values_of]
    return _svg(parts + _legend(list(series)), title)


def size_vs_error(points: list[tuple[float, float, str, bool]], *, title: str,
                  y_title: str = "MAPE %", error_limits: list[tuple[float, str]] = (),
                  size_limits: list[tuple[float, str]] = ()) -> Markup:
    """(bytes, error, label, passed) per version on a log size axis; the Pareto front (no
    other version both smaller and better) joined by a line; the gate's error limits across
    and its size limits upright, each (value, label)."""
    points = [p for p in points if p[0] > 0 and math.isfinite(p[1])]
    if not points:
        return Markup('<p class="empty">nothing to plot yet</p>')
    sizes = [p[0] for p in points] + [value for value, _ in size_limits if value > 0]
    errors = [p[1] for p in points] + [value for value, _ in error_limits]
    frame = _Frame((min(sizes) / 1.3, max(sizes) * 1.3), _padded(min(errors), max(errors)),
                   log_x=True)
    steps = [m * 10 ** d for d in range(math.floor(frame.x0), math.ceil(frame.x1) + 1)
             for m in (1, 2, 5)]
    x_ticks = [(v, _bytes(v)) for v in steps if frame.x0 <= math.log10(v) <= frame.x1]
    parts = frame.axes(y_title, x_ticks) + _thresholds(frame, list(error_limits)) \
        + _thresholds(frame, [(v, f"{label} {_size_limit(v)}") for v, label in size_limits
                              if v > 0],
                      vertical=True)
    front, best = [], math.inf
    for size, error, _, _ in sorted(points):
        if error < best:
            front.append((size, error))
            best = error
    parts.append('<polyline points="' + " ".join(f"{frame.x(s):.1f},{frame.y(e):.1f}"
                                                 for s, e in front)
                 + '" fill="none" stroke="#7a7a7a" stroke-dasharray="4 3"/>')
    on_front = set(front)
    for size, error, label, passed in points:
        x, y = frame.x(size), frame.y(error)
        colour = COLOURS[2] if passed else COLOURS[1]
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}">'
                     f'<title>{escape(label)}: {size:,.0f} B, {error:.2f}</title></circle>')
        if (size, error) in on_front:  # the others are named on hover: labels would pile up
            parts.append(f'<text x="{x + 6:.1f}" y="{y - 5:.1f}" class="point">'
                         f'{escape(label)}</text>')
    return _svg(parts + _key([("passed for a class", COLOURS[2]), ("refused everywhere", COLOURS[1]),
                        ("Pareto front", "#7a7a7a")]), title)


def _key(entries: list[tuple[str, str]]) -> list[str]:
    parts = []
    for i, (name, colour) in enumerate(entries):
        y = TOP + 6 + i * 16
        parts.append(f'<circle cx="{WIDTH - RIGHT + 15}" cy="{y - 3}" r="4" fill="{colour}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 24}" y="{y + 1}">{escape(name)}</text>')
    return parts
