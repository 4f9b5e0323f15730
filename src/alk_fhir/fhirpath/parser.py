"""FHIRPath N1 (http://hl7.org/fhirpath/N1) text to a small syntax tree.

Why our own parser: fhirpathpy's ANTLR parser silently drops an expression's unparsed tail
(``@2015T.is(DateTime)`` was read as ``@2015``) and is slow to load. This one is a hand-written
precedence climber over the N1 grammar (§"Grammar" and the operator precedence table in §6): every
character is consumed or the expression is refused with a ``FHIRPathSyntaxError`` naming the position.

Nodes are tuples ``(kind, ...)``:
``("lit", value)``, ``("quantity", Quantity)``, ``("empty",)``, ``("var", name)``, ``("this",)``,
``("index",)``, ``("total",)``, ``("member", base|None, name)``, ``("call", base|None, name, args)``,
``("indexer", base, index)``, ``("unary", op, operand)``, ``("binary", op, left, right)``,
``("type", op, operand, (namespace|None, name))`` for ``is``/``as``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from alk_fhir.fhirpath.values import CALENDAR_UNITS, FDate, FDateTime, FTime, Quantity

Node = tuple[Any, ...]


class FHIRPathSyntaxError(ValueError):
    """Text that is not a FHIRPath expression."""


_TOKEN = re.compile(r"""
    (?P<ws>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<datetime>@\d{4}(?:-\d{2}(?:-\d{2})?)?T(?:\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:\d{2})?)?)
  | (?P<date>@\d{4}(?:-\d{2}(?:-\d{2})?)?)
  | (?P<time>@T\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?)
  | (?P<number>\d+(?:\.\d+)?L?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<delimited>`(?:[^`\\]|\\.)*`)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<special>\$this|\$index|\$total)
  | (?P<op><=|>=|!=|!~|[-+*/&|<>=~(),.\[\]{}%])
""", re.VERBOSE | re.DOTALL)

_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}

# binding power of binary operators (N1 §6 "Operator precedence", lowest first)
_BINARY: dict[str, int] = {
    "implies": 1, "or": 2, "xor": 2, "and": 3, "in": 4, "contains": 4,
    "=": 5, "~": 5, "!=": 5, "!~": 5, "<=": 6, "<": 6, ">": 6, ">=": 6, "|": 7,
    "is": 8, "as": 8, "+": 9, "-": 9, "&": 9, "*": 10, "/": 10, "div": 10, "mod": 10,
}
_UNARY_POWER = 11
_KEYWORDS_AS_IDENTIFIERS = {"as", "contains", "in", "is"}


def unescape(body: str) -> str:
    """A string literal's or delimited identifier's text with its escapes (N1 §"String") resolved."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2:i + 6]):
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        elif nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            raise FHIRPathSyntaxError(f"invalid escape \\{nxt}")
    return "".join(out)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FHIRPathSyntaxError(f"unexpected {text[pos:pos + 10]!r} at position {pos}")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append((kind, m.group(), pos))
        pos = m.end()
    out.append(("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, offset: int = 0) -> tuple[str, str, int]:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def take(self) -> tuple[str, str, int]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        kind, text, pos = self.take()
        if text != value or kind not in ("op", "ident"):
            raise FHIRPathSyntaxError(f"expected {value!r} at position {pos}, found {text or 'the end'!r}")

    def fail(self, what: str) -> FHIRPathSyntaxError:
        _, text, pos = self.peek()
        return FHIRPathSyntaxError(f"{what} at position {pos} (found {text or 'the end'!r})")

    def parse(self) -> Node:
        node = self.expression(0)
        if self.peek()[0] != "end":
            raise self.fail("unexpected text after the expression")
        return node

    def binary_op(self) -> str | None:
        kind, text, _ = self.peek()
        if kind == "op" and text in _BINARY:
            return text
        if kind == "ident" and text in _BINARY:
            return text
        return None

    def expression(self, min_power: int) -> Node:
        left = self.unary()
        while True:
            op = self.binary_op()
            if op is None or _BINARY[op] <= min_power:
                return left
            self.take()
            if op in ("is", "as"):
                left = ("type", op, left, self.type_specifier())
                continue
            right = self.expression(_BINARY[op])
            left = ("binary", op, left, right)

    def unary(self) -> Node:
        kind, text, _ = self.peek()
        if kind == "op" and text in ("+", "-"):
            self.take()
            operand = self.unary()
            return ("unary", text, operand)
        return self.postfix(self.term())

    def postfix(self, node: Node) -> Node:
        while True:
            kind, text, _ = self.peek()
            if kind == "op" and text == ".":
                self.take()
                name = self.identifier()
                if self.peek()[1] == "(" and self.peek()[0] == "op":
                    node = ("call", node, name, self.arguments())
                else:
                    node = ("member", node, name)
            elif kind == "op" and text == "[":
                self.take()
                index = self.expression(0)
                self.expect("]")
                node = ("indexer", node, index)
            else:
                return node

    def identifier(self) -> str:
        kind, text, pos = self.take()
        if kind == "ident":
            return text
        if kind == "delimited":
            return unescape(text[1:-1])
        raise FHIRPathSyntaxError(f"expected an identifier at position {pos}, found {text or 'the end'!r}")

    def arguments(self) -> list[Node]:
        self.expect("(")
        args: list[Node] = []
        if self.peek()[1] == ")":
            self.take()
            return args
        while True:
            args.append(self.expression(0))
            _, text, pos = self.take()
            if text == ")":
                return args
            if text != ",":
                raise FHIRPathSyntaxError(f"expected ',' or ')' at position {pos}")

    def type_specifier(self) -> tuple[str | None, str]:
        first = self.identifier()
        if self.peek()[1] == "." and self.peek(1)[0] in ("ident", "delimited"):
            self.take()
            return first, self.identifier()
        return None, first

    def term(self) -> Node:
        kind, text, pos = self.take()
        if kind == "number":
            return self.number(text)
        if kind == "string":
            return ("lit", unescape(text[1:-1]))
        if kind == "date":
            return ("lit", FDate.parse(text[1:]))
        if kind == "datetime":
            return ("lit", FDateTime.parse(text[1:]))
        if kind == "time":
            return ("lit", FTime.parse(text[2:]))
        if kind == "special":
            return ({"$this": ("this",), "$index": ("index",), "$total": ("total",)})[text]
        if kind == "op" and text == "(":
            inner = self.expression(0)
            self.expect(")")
            return inner
        if kind == "op" and text == "{":
            self.expect("}")
            return ("empty",)
        if kind == "op" and text == "%":
            k2, t2, p2 = self.take()
            if k2 == "ident":
                return ("var", t2)
            if k2 in ("string", "delimited"):
                return ("var", unescape(t2[1:-1]))
            raise FHIRPathSyntaxError(f"expected a variable name at position {p2}")
        if kind == "ident" and text in ("true", "false"):
            return ("lit", text == "true")
        if kind in ("ident", "delimited"):
            name = text if kind == "ident" else unescape(text[1:-1])
            if kind == "ident" and self.peek()[1] == "(" and self.peek()[0] == "op":
                return ("call", None, name, self.arguments())
            return ("member", None, name)
        raise FHIRPathSyntaxError(f"unexpected {text or 'end of expression'!r} at position {pos}")

    def number(self, text: str) -> Node:
        if text.endswith("L"):
            return ("lit", int(text[:-1]))
        value: int | Decimal = Decimal(text) if "." in text else int(text)
        kind, unit, _ = self.peek()
        if kind == "string":
            self.take()
            return ("lit", Quantity(Decimal(value), unescape(unit[1:-1])))
        if kind == "ident" and unit in CALENDAR_UNITS:
            self.take()
            return ("lit", Quantity(Decimal(value), CALENDAR_UNITS[unit]))
        return ("lit", value)


def parse(text: str) -> Node:
    """The syntax tree of ``text``; raises ``FHIRPathSyntaxError`` for anything not FHIRPath N1."""
    return _Parser(text).parse()
