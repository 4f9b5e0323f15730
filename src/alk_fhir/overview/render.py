"""The overview as one standalone HTML page a clinician reads on screen or on paper.

The page shows the document's attested content: the Composition's header facts and each
section's narrative (Composition.section.text, "the attested content of the section"), in the
order of the document, each headed by its title and guideline section. It needs nothing beyond
itself: styles are inline, there are no scripts, and a Content-Security-Policy forbids loading
anything. Narratives from another system are re-serialised through an allow-list (the R4
narrative element set, harmless attributes, http(s)/fragment links only), so a hostile document
cannot put script or remote content on the page.
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from typing import Any

from alk_fhir.knowledge import Package
from alk_fhir.overview.document import composition_of, document_context, section_entries
from alk_fhir.overview.items import section_items, status_nl
from alk_fhir.overview.narrative import XHTML_NS, coordinators
from alk_fhir.overview.sections import spec_of_section
from alk_fhir.overview.summary import SUMMARY_CLASS
from alk_fhir.overview.text import nl_date, patient_line, reference_text

ALLOWED = frozenset({
    "a", "abbr", "b", "big", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd", "dfn",
    "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "q",
    "samp", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
    "tt", "ul", "var",
})
DROPPED = frozenset({"script", "style", "iframe", "object", "embed", "form", "input", "button", "textarea",
                     "select", "link", "meta", "base", "frame", "frameset", "head", "title", "svg", "math"})
ATTRIBUTES = frozenset({"colspan", "rowspan", "title", "lang", "class", "href", "abbr", "scope"})
VOID = frozenset({"br", "hr", "col"})

STYLE = """
:root { color-scheme: light; }
body { font-family: "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; font-size: 11pt; line-height: 1.4;
       color: #111; margin: 2em auto; max-width: 60em; padding: 0 1em; }
header { border-bottom: 2px solid #1f4e79; margin-bottom: 1em; }
h1 { font-size: 1.5em; margin: 0 0 .3em 0; color: #1f4e79; }
h2 { font-size: 1.15em; margin: 1.4em 0 .4em 0; color: #1f4e79; border-bottom: 1px solid #ccd; }
h2 .guideline { font-weight: normal; color: #555; font-size: .85em; margin-left: .5em; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .15em 1em; margin: .5em 0 1em 0; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
.banner { border: 2px solid #b00020; background: #fff4f4; padding: .5em .8em; margin: .8em 0; }
.coordinator { border-left: 4px solid #1f4e79; background: #f1f6fb; padding: .4em .8em; margin: .8em 0; }
table { border-collapse: collapse; width: 100%; margin: .3em 0 .6em 0; }
th, td { border: 1px solid #bbb; padding: .25em .45em; text-align: left; vertical-align: top; }
th { background: #eef2f6; }
section { break-inside: avoid-page; }
section.summary { border: 1px solid #1f4e79; border-radius: 4px; padding: 0 .8em .4em; background: #f8fbfe; }
section.summary h2 { margin-top: .6em; }
.alert { border: 2px solid #b00020; background: #fff4f4; padding: .4em .7em; }
footer { margin-top: 2em; font-size: .85em; color: #555; border-top: 1px solid #ccd; padding-top: .5em; }
@media print {
  @page { margin: 1.5cm 1.5cm 1.8cm; }
  body { margin: 0; max-width: none; font-size: 10pt; }
  section.summary { background: none; }
  table { font-size: 9.5pt; }
  a { color: inherit; text-decoration: none; }
  h2 { break-after: avoid-page; }
  tr { break-inside: avoid; }
  thead { display: table-header-group; }
}
"""


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _safe_href(value: str) -> bool:
    lowered = value.strip().lower()
    return lowered.startswith(("http://", "https://", "#"))


def _serialise(el: ET.Element) -> str:
    local = el.tag.rpartition("}")[2].lower()
    if local in DROPPED:
        return _esc(el.tail or "")
    inner = _esc(el.text or "") + "".join(_serialise(child) for child in el)
    tail = _esc(el.tail or "")
    if local not in ALLOWED:
        return inner + tail  # unknown formatting: keep the words, lose the element
    attrs = ""
    for name, value in el.attrib.items():
        short = name.rpartition("}")[2].lower()
        if short not in ATTRIBUTES or (short == "href" and not _safe_href(value)):
            continue
        attrs += f' {short}="{_esc(value)}"'
    if local in VOID:
        return f"<{local}{attrs}>{tail}"
    return f"<{local}{attrs}>{inner}</{local}>{tail}"


def safe_narrative(narrative: Any) -> str:
    """The inner HTML of a Narrative.div, through the allow-list; plain text if it is not XML."""
    div = narrative.get("div") if isinstance(narrative, dict) else None
    if not isinstance(div, str) or not div.strip():
        return ""
    try:
        root = ET.fromstring(div)
    except ET.ParseError:
        return f"<p>{_esc(' '.join(div.split()))}</p>"
    if root.tag not in (f"{{{XHTML_NS}}}div", "div"):
        return _serialise(root)
    return _esc(root.text or "") + "".join(_serialise(child) for child in root)


def summary_section(composition: Any) -> str:
    """The summary for the colleague (part of the Composition's attested narrative, written by
    ``alk_fhir.overview.summary``) as the page's first section; '' when the document has none."""
    div = (composition.get("text") or {}).get("div") if isinstance(composition, dict) else None
    if not isinstance(div, str):
        return ""
    try:
        root = ET.fromstring(div)
    except ET.ParseError:
        return ""
    for el in root.iter():
        if SUMMARY_CLASS in str(el.get("class") or "").split():
            inner = _esc(el.text or "") + "".join(_serialise(child) for child in el)
            return f'<section id="summary" class="summary">{inner}</section>'
    return ""


def render_html(document: Any, pkg: Package) -> str:
    """The standalone page (UTF-8 text); DocumentError when ``document`` is not a document."""
    composition = composition_of(document)
    ctx = document_context(document, pkg)
    patient = ctx.resolve(composition.get("subject")) or ctx.patient
    title = str(composition.get("title") or "Casusoverzicht hardnekkige ALK")
    facts = [
        ("Patiënt", patient_line(patient)),
        ("Datum", nl_date(composition.get("date"))),
        ("Status", status_nl(composition.get("status"))),
        ("Opgesteld door", ", ".join(reference_text(ctx, a) for a in composition.get("author") or [])),
        ("Beheerd door", reference_text(ctx, composition.get("custodian"))),
    ]
    version = (document.get("meta") or {}).get("versionId") if isinstance(document, dict) else None
    if version:
        facts.append(("Versie", str(version)))
    banners: list[str] = []
    coordinator_names: list[str] = []
    has_team_section = False
    body: list[str] = [summary_section(composition)] if summary_section(composition) else []
    for i, section in enumerate(composition.get("section") or []):
        spec = spec_of_section(pkg, section)
        heading = _esc(section.get("title") or (spec.title if spec else f"Sectie {i + 1}"))
        guideline = f'<span class="guideline">Handreiking §{_esc(spec.guideline)}</span>' if spec else ""
        anchor = _esc(spec.key if spec else f"section-{i + 1}")
        if spec is not None:
            content = section_items(spec.key, section_entries(section, ctx), ctx, pkg)
            banners += content.notes
            if spec.key == "careTeam":
                has_team_section = True
                coordinator_names += coordinators(content.items)
        empty = ""
        if section.get("emptyReason") and not section.get("text"):
            empty = "<p>Niets vastgelegd.</p>"
        body.append(f'<section id="{anchor}"><h2>{heading}{guideline}</h2>'
                    f'{safe_narrative(section.get("text")) or empty}</section>')
    header_bits = [f"<h1>{_esc(title)}</h1>", '<dl class="facts">']
    header_bits += [f"<dt>{_esc(k)}</dt><dd>{_esc(v or '—')}</dd>" for k, v in facts]
    header_bits.append("</dl>")
    if coordinator_names:
        header_bits.append(f'<p class="coordinator"><strong>Casus-coördinator:</strong> '
                           f'{_esc(", ".join(coordinator_names))}</p>')
    elif has_team_section:
        header_bits.append('<p class="coordinator"><strong>Casus-coördinator:</strong> nog niet aangesteld</p>')
    header_bits += [f'<p class="banner"><strong>Let op:</strong> {_esc(b)}</p>' for b in banners]
    identifier = (document.get("identifier") or {}).get("value", "") if isinstance(document, dict) else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="nl">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<header>{''.join(header_bits)}</header>\n<main>\n" + "\n".join(body) + "\n</main>\n"
        f"<footer>Document {_esc(identifier)} · FHIR R4 casusoverzicht · gegenereerd uit de vastgelegde "
        f"gegevens; de secties tonen de geattesteerde tekst van het document.</footer>\n</body>\n</html>\n"
    )

