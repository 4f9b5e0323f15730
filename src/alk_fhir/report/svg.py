"""Two plain charts as inline SVG (no script, no stylesheet, no web font): print and e-mail safe.

- :func:`month_chart`: per month, three bars side by side: shown, accepted, overridden.
- :func:`section_chart`: per guideline section, one bar of the cards shown, split into accepted,
  overridden and the rest (no feedback).

Every text is escaped; every chart has a ``<title>`` and ``role="img"`` for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from alk_fhir.report.feedback import Tally, cell, plotted

COLOURS = {"shown": "#9aa5b1", "accepted": "#2f855a", "overridden": "#c05621", "rest": "#d9dee3"}
SERIES = {  # Dutch / English
    "shown": "Getoond / shown",
    "accepted": "Geaccepteerd / accepted",
    "overridden": "Niet opgevolgd / overridden",
    "rest": "Geen terugkoppeling / no feedback",
}
FONT = 'font-family="sans-serif" font-size="11"'


def _legend(keys: Sequence[str], x: int, y: int) -> str:
    parts = []
    for i, key in enumerate(keys):
        left = x + i * 190
        parts.append(f'<rect x="{left}" y="{y - 9}" width="10" height="10" fill="{COLOURS[key]}"/>'
                     f'<text x="{left + 14}" y="{y}" {FONT}>{escape(SERIES[key])}</text>')
    return "".join(parts)


def _axis(value: int) -> tuple[int, int]:
    """(top, step) of a round axis over 0..value: step 1, 2 or 5 × 10^n, at most five steps."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor * 5 >= value:
                top = step * factor * max(1, -(-value // (step * factor)))
                return top, step * factor
        step *= 10


def _label(text: str, limit: int = 52) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def month_chart(months: Sequence[tuple[str, Tally]], title: str) -> str:
    """Grouped bars per month."""
    group, bar, left, top, height = 3 * 12 + 14, 12, 44, 34, 160
    width = left + max(1, len(months)) * group + 20
    biggest, step = _axis(max([max(plotted(t.shown), plotted(t.accepted), plotted(t.overridden))
                               for _, t in months] or [1]) or 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{max(width, 600)}" height="{top + height + 40}" '
           f'viewBox="0 0 {max(width, 600)} {top + height + 40}"><title>{escape(title)}</title>',
           _legend(("shown", "accepted", "overridden"), left, 14)]
    for value in range(0, biggest + 1, step):  # horizontal grid with values
        y = top + height - round(height * value / biggest)
        out.append(f'<line x1="{left}" y1="{y}" x2="{width - 10}" y2="{y}" stroke="#e2e8f0"/>'
                   f'<text x="{left - 6}" y="{y + 4}" text-anchor="end" {FONT}>{value}</text>')
    for m, (month, tally) in enumerate(months):
        x0 = left + m * group + 7
        for k, (key, value) in enumerate((("shown", tally.shown), ("accepted", tally.accepted),
                                          ("overridden", tally.overridden))):
            h = round(height * plotted(value) / biggest)
            out.append(f'<rect x="{x0 + k * bar}" y="{top + height - h}" width="{bar - 2}" height="{h}" '
                       f'fill="{COLOURS[key]}"><title>{escape(month)}: {escape(SERIES[key])} '
                       f'{escape(str(cell(value)))}</title></rect>')
        out.append(f'<text x="{x0 + 1.5 * bar}" y="{top + height + 16}" text-anchor="middle" {FONT}>'
                   f'{escape(month)}</text>')
    out.append("</svg>")
    return "".join(out)


def section_chart(sections: Sequence[tuple[str, Tally]], title: str) -> str:
    """One stacked horizontal bar per section label: accepted, overridden, no feedback."""
    label_width, bar_width, row, top = 330, 380, 24, 30
    height = top + max(1, len(sections)) * row + 10
    biggest = max([max(plotted(t.shown), plotted(t.accepted) + plotted(t.overridden)) for _, t in sections]
                  or [1]) or 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{label_width + bar_width + 60}" '
           f'height="{height}" viewBox="0 0 {label_width + bar_width + 60} {height}"><title>{escape(title)}</title>',
           _legend(("accepted", "overridden", "rest"), 8, 14)]
    for r, (label, tally) in enumerate(sections):
        y = top + r * row
        out.append(f'<text x="4" y="{y + 13}" {FONT}><title>{escape(label)}</title>{escape(_label(label))}</text>')
        x = label_width
        accepted, overridden = plotted(tally.accepted), plotted(tally.overridden)
        rest = max(0, plotted(tally.shown) - accepted - overridden)
        for key, value, shown in (("accepted", accepted, tally.accepted), ("overridden", overridden, tally.overridden),
                                  ("rest", rest, rest)):
            w = round(bar_width * value / biggest)
            if w:
                out.append(f'<rect x="{x}" y="{y}" width="{w}" height="16" fill="{COLOURS[key]}">'
                           f'<title>{escape(label)}: {escape(SERIES[key])} {escape(str(cell(shown)))}</title></rect>')
            x += w
        out.append(f'<text x="{x + 6}" y="{y + 13}" {FONT}>{escape(str(cell(tally.shown)))}</text>')
    out.append("</svg>")
    return "".join(out)
