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
    try:
        root = ET.fromstring(_ENTITY.sub(_entity, div))
    except ET.ParseError as exc:
        return f"the narrative is not well-formed XHTML: {exc}", None
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
