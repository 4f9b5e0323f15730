"""The feedback report as one self-contained HTML page, Dutch with English, charts as inline SVG.

No script, no external stylesheet, font or image: the page opens offline, prints, and can be mailed
to the guideline working group as it is. Every value is escaped.
"""

from __future__ import annotations

from html import escape

from alk_fhir.report.feedback import MIN_CELL, FeedbackReport, Tally, cell
from alk_fhir.report.svg import month_chart, section_chart

STYLE = """
body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1a202c;line-height:1.4}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #cbd5e0}
.en{color:#4a5568;font-style:italic}
table{border-collapse:collapse;margin:1em 0;font-size:.9em} th,td{border:1px solid #cbd5e0;padding:.25em .5em}
th{background:#edf2f7;text-align:left} td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.section td{background:#f7fafc;font-weight:bold}
@media print{h2{break-after:avoid} table,svg{break-inside:avoid}}
"""


def _both(nl: str, en: str) -> str:
    return f'{escape(nl)} <span class="en">/ {escape(en)}</span>'


TEXTS: dict[str, tuple[str, str]] = {  # Dutch, English
    "title": ("Terugkoppeling op de adviezen van de handreiking hardnekkige ALK",
              "Feedback on the advice of the guideline on persistent ALK"),
    "intro": ("Voor de werkgroep van de handreiking: hoe vaak elk advies getoond, geaccepteerd en niet "
              "opgevolgd werd, met de redenen, per maand.",
              "For the guideline working group: how often each piece of advice was shown, accepted and "
              "overridden, with the reasons, per month."),
    "privacy": ("Dit rapport bevat geen gegevens over patiënten of professionals: alleen aantallen per advies. "
                f"Toelichtingen bij het niet opvolgen worden geteld, nooit getoond. Aantallen van 1 tot {MIN_CELL} "
                f"staan als <{MIN_CELL}.",
                "This report holds no data about patients or professionals: counts per piece of advice only. "
                f"Comments on overrides are counted, never shown. Counts from 1 to {MIN_CELL - 1} are shown as "
                f"<{MIN_CELL}."),
    "months": ("Geaccepteerd en niet opgevolgd tellen in de maand van de terugkoppeling, getoond in de maand "
               "van tonen. Terugkoppeling op een kaart die deze server niet als getoond registreerde, staat "
               "onder onbekend.",
               "Accepted and overridden count in the month of the feedback, shown in the month shown. "
               "Feedback on a card this server did not record as shown is listed as unknown."),
}


def _text(key: str) -> str:
    return _both(*TEXTS[key])


def _n(count: int) -> str:
    return escape(str(cell(count)))


def _pct(tally: Tally) -> str:
    rate = tally.acceptance
    return "–" if rate is None else f"{round(100 * rate)} %"


def _reasons(tally: Tally, report: FeedbackReport) -> str:
    parts = []
    for code in report.labels.reason_codes():
        if tally.reasons[code]:
            texts = report.labels.reason(code)
            parts.append(f"{_both(texts['nl'], texts['en'])}: {_n(tally.reasons[code])}")
    if tally.comments:
        parts.append(f"{_both('met toelichting', 'with a comment')}: {_n(tally.comments)}")
    return "<br>".join(parts)


def _counts(tally: Tally, report: FeedbackReport) -> str:
    return (f'<td class="n">{_n(tally.shown)}</td><td class="n">{_n(tally.accepted)}</td>'
            f'<td class="n">{_n(tally.overridden)}</td><td class="n">{_pct(tally)}</td>'
            f"<td>{_reasons(tally, report)}</td>")


HEAD = ("<tr><th>{}</th><th>" + _both("Getoond", "shown") + "</th><th>" + _both("Geaccepteerd", "accepted")
        + "</th><th>" + _both("Niet opgevolgd", "overridden") + "</th><th>" + _both("Acceptatie", "acceptance")
        + "</th><th>" + _both("Redenen van niet opvolgen", "override reasons") + "</th></tr>")


def render_html(report: FeedbackReport) -> str:
    labels = report.labels
    months = report.months
    period = f"{months[0]} – {months[-1]}" if months else "–"
    total = report.total()
    out = ['<!DOCTYPE html><html lang="nl"><head><meta charset="utf-8">',
           "<title>Terugkoppeling op de adviezen hardnekkige ALK / Feedback on the advice</title>",
           f"<style>{STYLE}</style></head><body>",
           f"<h1>{_text('title')}</h1>",
           f"<p>{_text('intro')}</p>",
           f"<p>{_both('Periode', 'period')}: {escape(period)}"
           + (f" ({_both('vanaf', 'from')} {escape(report.since)})" if report.since else "")
           + f". {_both('Getoond', 'shown')}: {_n(total.shown)}; {_both('geaccepteerd', 'accepted')}: "
           f"{_n(total.accepted)}; {_both('niet opgevolgd', 'overridden')}: {_n(total.overridden)}.</p>",
           f"<p>{_text('privacy')}</p>"]

    out.append(f"<h2>{_both('Per maand', 'per month')}</h2>")
    out.append(month_chart(report.per_month(), "Per maand / per month"))
    out.append(f"<h2>{_both('Per paragraaf van de handreiking', 'per guideline section')}</h2>")
    sections = [(f"§{code} {labels.section(code)['nl']}" if code else labels.section(code)["nl"], tally)
                for code, tally in report.per_section()]
    out.append(section_chart(sections, "Per paragraaf / per section"))

    out.append(f"<h2>{_both('Per advies, alle maanden', 'per piece of advice, all months')}</h2><table>")
    out.append(HEAD.format(_both("Paragraaf en advies", "section and advice")))
    current: object = object()
    for (section, action), tally in report.per_action():
        if section != current:
            current = section
            texts = labels.section(section)
            prefix = f"§{escape(section)} " if section else ""
            out.append(f'<tr class="section"><td colspan="6">{prefix}{_both(texts["nl"], texts["en"])}</td></tr>')
        texts = labels.action(action)
        out.append(f"<tr><td>{_both(texts['nl'], texts['en'])}</td>{_counts(tally, report)}</tr>")
    out.append("</table>")

    out.append(f"<h2>{_both('Per maand en advies', 'per month and piece of advice')}</h2><table>")
    out.append(HEAD.format(_both("Maand, paragraaf, advies", "month, section, advice")))
    for (month, section, action), tally in report.rows():
        texts = labels.action(action)
        where = f"§{escape(section)}" if section else "?"
        out.append(f"<tr><td>{escape(month)} · {where} · {_both(texts['nl'], texts['en'])}</td>"
                   f"{_counts(tally, report)}</tr>")
    out.append("</table>")
    out.append(f"<p>{_text('months')}</p>")
    out.append("</body></html>\n")
    return "".join(out)
