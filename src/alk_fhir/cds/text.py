"""Dutch by default, English on request: the language of cards and discovery texts.

Every text of the guideline package is a Dutch string with its English version in the standard
FHIR ``translation`` extension (R4 extension-translation) on the ``_element`` sibling, or, for
CodeSystem concepts, an English ``designation``. The CDS client states its user's language in the
HTTP ``Accept-Language`` header (RFC 9110 §12.5.4); CDS Hooks 2.0 defines no language field.
"""

from __future__ import annotations

from typing import Any

from alk_fhir.knowledge.canonical import TRANSLATION_EXT

DEFAULT_LANGUAGE = "nl"
LANGUAGES = ("nl", "en")
Texts = dict[str, str]  # language -> text


def choose_language(accept_language: str | None) -> str:
    """The supported language with the highest q-value; Dutch when none is acceptable or all tie at 0."""
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for part in (accept_language or "").split(",")[:32]:
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().split("-")[0].lower()
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best


def _translation(extensions: Any, lang: str) -> str | None:
    for ext in extensions if isinstance(extensions, list) else []:
        if not isinstance(ext, dict) or ext.get("url") != TRANSLATION_EXT:
            continue
        parts = {e.get("url"): e for e in ext.get("extension", []) if isinstance(e, dict)}
        if (parts.get("lang") or {}).get("valueCode") == lang:
            content = (parts.get("content") or {}).get("valueString")
            if isinstance(content, str) and content:
                return content
    return None


def texts(node: dict[str, Any], key: str) -> Texts:
    """``{"nl": …, "en": …}`` for element ``key`` of ``node`` (English falls back to Dutch)."""
    dutch = node.get(key)
    if not isinstance(dutch, str) or not dutch:
        return {}
    english = _translation((node.get("_" + key) or {}).get("extension"), "en")
    return {"nl": dutch, "en": english or dutch}


def concept_texts(concept: dict[str, Any]) -> Texts:
    """Display of a CodeSystem concept per language (the English ``designation`` when present)."""
    dutch = concept.get("display")
    if not isinstance(dutch, str):
        return {}
    english = next((d.get("value") for d in concept.get("designation", []) or []
                    if isinstance(d, dict) and d.get("language") == "en" and d.get("value")), None)
    return {"nl": dutch, "en": english or dutch}


def pick(found: Texts, lang: str) -> str:
    return found.get(lang) or found.get(DEFAULT_LANGUAGE) or ""


def shorten(text: str, limit: int) -> str:
    """At most ``limit - 1`` characters, cut at a word boundary with an ellipsis (CDS Hooks: summary < 140)."""
    if len(text) < limit:
        return text
    cut = text[: limit - 2].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + "…"
