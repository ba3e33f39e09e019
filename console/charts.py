"""Server-side SVG charts (plain strings, no JavaScript): horizontal bars, one per state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

LABEL_WIDTH = 150  # room for the longest state label (8 Chinese characters at 13 px)
VALUE_WIDTH = 130  # room for the value printed after the bar
BAR_HEIGHT = 18
GAP = 8
PAD = 10


@dataclass(frozen=True)
class Bar:
    """One bar: its label, the value its length stands for, and the text printed beside it."""

    label: str
    value: int
    text: str


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def bar_width(value: int, top: int, plot_width: float) -> float:
    """The length of a bar: proportional to its value, the largest filling the plot (0 when all are 0)."""
    if top <= 0 or value <= 0:
        return 0.0
    return round(plot_width * value / top, 2)


def bar_chart(bars: Sequence[Bar], *, title: str, width: int = 640, css_class: str = "chart") -> Markup:
    """An accessible SVG bar chart; every text is escaped, so labels can hold anything."""
    plot = width - LABEL_WIDTH - VALUE_WIDTH
    top = max((b.value for b in bars), default=0)
    height = PAD * 2 + len(bars) * (BAR_HEIGHT + GAP) - (GAP if bars else 0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{_attr(css_class)}" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, bar in enumerate(bars):
        y = PAD + i * (BAR_HEIGHT + GAP)
        middle = y + BAR_HEIGHT / 2
        w = bar_width(bar.value, top, plot)
        parts += [
            f'<text class="label" x="{LABEL_WIDTH - 8}" y="{middle}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(bar.label)}</text>',
            f'<rect class="bar" x="{LABEL_WIDTH}" y="{y}" width="{w}" height="{BAR_HEIGHT}" '
            f'data-value="{bar.value}"><title>{escape(bar.label)}：{escape(bar.text)}</title></rect>',
            f'<text class="value" x="{LABEL_WIDTH + w + 6}" y="{middle}" dominant-baseline="middle">'
            f"{escape(bar.text)}</text>",
        ]
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above is escaped
