"""``htmlChecks()`` for Narrative.div (R4 invariants txt-1 and txt-2), which fhirpathpy lacks.

R4 narrative.html: the div is XHTML in the XHTML namespace, rooted at ``div``, with only basic
formatting elements and attributes — no head/body, scripts, forms, frames, objects, base/link,
external stylesheets or event attributes (``on*``) — and it must have some non-whitespace content
(txt-2; an image counts). HTML named entities (``&nbsp;``) are accepted: they are replaced by
their characters before parsing, as XML alone does not define them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.entities import name2codepoint

XHTML_NS = "http://www.w3.org/1999/xhtml"
ALLOWED = frozenset({
    "a", "abbr", "acronym", "b", "big", "blockquote", "br", "caption", "cite", "code", "col", "colgroup",
    "dd", "dfn", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li",
    "ol", "p", "pre", "q", "samp", "small", "span", "strong", "sub", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "tr", "tt", "ul", "var",
})
_XML_ENTITIES = {"amp", "lt", "gt", "quot", "apos"}
_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")


def _entity(match: re.Match[str]) -> str:
    name = match.group(1)
    if name in _XML_ENTITIES or name not in name2codepoint:
        return match.group(0)
    return f"&#{name2codepoint[name]};"


def html_problems(div: str) -> tuple[str | None, str | None]:
    """(txt-1 problem, txt-2 problem); None where that invariant holds."""
    if "<!DOCTYPE" in div or "<!ENTITY" in div:
        return "the narrative must not declare a DOCTYPE or entities", None
    simple = _simple_problems(div)
    return simple if simple is not None else _parsed_problems(div)


_ROOT = f'<div xmlns="{XHTML_NS}">'
_TOKEN = re.compile(r"<(/?)([a-z][a-z0-9]*)(/?)>|([^<&]+)")
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _simple_problems(div: str) -> tuple[str | None, str | None] | None:
    """The answer for the usual narrative — allowed elements without attributes, plain text, no
    entities, comments or CDATA — read with one regex instead of an XML parser (a third of the cost);
    None for anything else, which ElementTree then reads (and words any error). For the divs this
    accepts the answer is the parser's, as tests/test_validation_plans.py checks on generated divs."""
    if not (div.startswith(_ROOT) and div.endswith("</div>")) or "]]>" in div or (
            not div.isprintable() and _NOT_XML_CHAR.search(div)):  # printable characters are XML characters
        return None
    body = div[len(_ROOT):-6]
    open_elements: list[str] = []
    content = False
    pos = 0
    for m in _TOKEN.finditer(body):
        if m.start() != pos:
            return None
        pos = m.end()
        close, name, empty, text = m.groups()
        if text is not None:
            content = content or bool(text.strip())
            continue
        if name not in ALLOWED:
            return None
        if close:
            if empty or not open_elements or open_elements.pop() != name:
                return None
        elif not empty:
            open_elements.append(name)
        content = content or name == "img"
    if pos != len(body) or open_elements:
        return None
    return None, None if content else "the narrative has no non-whitespace content"


def _parsed_problems(div: str) -> tuple[str | None, str | None]:
    try:
        root = ET.fromstring(_ENTITY.sub(_entity, div))
    except ET.ParseError as exc:
        return f"the narrative is not well-formed XHTML: {exc}", None
    except UnicodeEncodeError as exc:  # a lone surrogate (JSON can carry "\ud800"): no XML character
        return (f"the narrative is not well-formed XHTML: character U+{ord(exc.object[exc.start]):04X} at position "
                f"{exc.start} is not allowed in XML"), None
    if root.tag != f"{{{XHTML_NS}}}div":
        return f"the narrative must be a <div> in the XHTML namespace {XHTML_NS}", None
    content = False
    for el in root.iter():
        ns, _, local = el.tag.rpartition("}")
        if ns[1:] != XHTML_NS or local not in ALLOWED:
            return f"element <{local}> is not allowed in a narrative", None
        for attr in el.attrib:
            name = attr.rpartition("}")[2].lower()
            if name.startswith("on"):
                return f"event attribute {name!r} is not allowed in a narrative", None
        if local == "img" or (el.text and el.text.strip()) or (el is not root and el.tail and el.tail.strip()):
            content = True
    return None, None if content else "the narrative has no non-whitespace content"
