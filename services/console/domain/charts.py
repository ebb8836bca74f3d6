"""Bar charts as geometry for an inline SVG drawn on the server: no chart library, no script, works offline.

A chart is bars in a fixed viewBox (the page scales it), stacked when it has more than one series, with a
few y-axis ticks at round numbers and every label (or every n-th, so they never overlap)."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 480, 220
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 12, 34
MAX_LABELS = 12


@dataclass(frozen=True)
class Series:
    name: str
    css_class: str
    values: Sequence[float]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css_class: str
    title: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Label:
    x: float
    text: str


@dataclass(frozen=True)
class BarChart:
    title: str
    description: str
    series: Sequence[Series]
    bars: Sequence[Bar]
    ticks: Sequence[Tick]
    labels: Sequence[Label]
    width: int = WIDTH
    height: int = HEIGHT
    baseline: float = HEIGHT - BOTTOM
    left: float = LEFT
    right: float = WIDTH - RIGHT


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten at or above `value` (at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value))


def bar_chart(title: str, categories: Sequence[str], series: Sequence[Series]) -> BarChart:
    """Bars per category, the series stacked bottom-up; `description` states the figures for screen readers."""
    totals = [sum(s.values[i] for s in series) for i in range(len(categories))]
    top = nice_ceiling(max(totals, default=0))
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(categories), 1)
    bar_width = max(slot * 0.7, 1)
    bars = []
    for index, category in enumerate(categories):
        x, stacked = LEFT + index * slot + (slot - bar_width) / 2, 0.0
        for one in series:
            value = one.values[index]
            if value <= 0:
                continue
            height = value / top * plot_height
            y = TOP + plot_height - (stacked + height)
            bars.append(Bar(x, y, bar_width, height, one.css_class, f"{category}: {one.name} {value:g}"))
            stacked += height
    ticks = [Tick(TOP + plot_height * (1 - share), f"{top * share:g}") for share in (0, 0.5, 1)]
    every = max(1, math.ceil(len(categories) / MAX_LABELS))
    labels = [
        Label(LEFT + index * slot + slot / 2, category)
        for index, category in enumerate(categories)
        if index % every == 0
    ]
    description = "; ".join(
        f"{category}: " + ", ".join(f"{s.name} {s.values[i]:g}" for s in series)
        for i, category in enumerate(categories)
    )
    return BarChart(title, description or "no data", series, bars, ticks, labels)
