"""The rule expression language: CEL over dotted tag names, checked before it ever runs.

Automation engineers write conditions, command values and calculated tags as CEL expressions
(https://github.com/google/cel-spec) over tag names as they appear in the site file
(``water.tank1.level > 2``). The compiler here reads the text with its own small parser so
that it can

* bind each dotted tag name (longest known name wins) to a flat CEL variable, because CEL reads
  ``a.b.c`` as field selections on a variable ``a``;
* make every number a double (integer literals are rewritten, numeric tags bound as doubles), so
  ``level > 2`` and ``mode == 1`` mean what an engineer expects;
* check types statically and name the exact ``file:line:column`` of every problem, including
  comparisons CEL would silently answer ``false`` (a number ``==`` a string);
* bound the work of any accepted expression: at most ``max_length`` characters, at most
  ``MAX_NESTING`` levels of nesting, no macro inside a macro's body and no ``map`` macro (the
  only ways CEL has to multiply work or data), so evaluation time is linear in the text.

The checked expression is re-emitted as plain CEL and compiled by the Rust CEL engine (package
``cel``), which then evaluates it; Python's ``eval``/``exec`` is never used. A final run on typed
probe values catches anything the static check let through.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final, cast

import cel

from controlcenter.automation import Expression, SiteLocation, SourceSpot
from controlcenter.model import DataType, Quality, Value
from rules.functions import (
    ContextHolder,
    build_functions,
    check_window,
    parse_window,
)
from rules.functions import (
    EvaluationContext as EvaluationContext,  # noqa: PLC0414 - re-exported as part of this API
)

MAX_NESTING: Final = 32
"""Deepest nesting of parentheses, calls, lists, indexes, unary operators and conditionals.

The CEL engine's own parser gives up at about a hundred levels, and each level costs the
checker a few Python stack frames; 32 is far beyond any readable expression."""

_RESERVED: Final = frozenset(
    # CEL spec, "Syntax": language keywords and words reserved for the host language.
    {"as", "break", "const", "continue", "else", "false", "for", "function", "if", "import"}
    | {"in", "let", "loop", "package", "namespace", "null", "return", "true", "var", "void"}
    | {"while"}
)


class ExpressionError(Exception):
    """An expression that cannot be accepted: where (``file:line:column``) and why."""

    def __init__(self, spot: SourceSpot, reason: str) -> None:
        super().__init__(f"{spot}: {reason}")
        self.spot = spot
        self.reason = reason


class ExpressionEvaluationError(Exception):
    """An accepted expression failed while running: a missing or malformed input value, a
    division by zero, an overflow, a result that is not a finite number, a failing context."""


class ValueKind(StrEnum):
    """The kind of value an expression gives."""

    NUMBER = "number"
    BOOL = "bool"
    STRING = "string"
    ANY = "any"


@dataclass(frozen=True, slots=True)
class TagSignature:
    """What the compiler needs to know of a tag: its name, data type and writability."""

    name: str
    data_type: DataType
    writable: bool = False


# --- static types ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Type:
    kind: str
    """number, bool, string, list, map or any."""
    item: _Type | None = None
    """The element type of a list, the value type of a map."""

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list of {self.item}"
        if self.kind == "map":
            return f"map of {self.item}"
        return self.kind


_NUMBER: Final = _Type("number")
_BOOL: Final = _Type("bool")
_STRING: Final = _Type("string")
_ANY: Final = _Type("any")

_TAG_TYPES: Final = {
    DataType.FLOAT: _NUMBER,
    DataType.INT: _NUMBER,
    DataType.BOOL: _BOOL,
    DataType.STRING: _STRING,
}
_RESULT_KINDS: Final = {
    "number": ValueKind.NUMBER,
    "bool": ValueKind.BOOL,
    "string": ValueKind.STRING,
    "any": ValueKind.ANY,
}


def _unify(left: _Type, right: _Type) -> _Type | None:
    """The common type of two values, or None when they cannot meet."""
    if left.kind == "any":
        return right
    if right.kind == "any":
        return left
    if left.kind != right.kind:
        return None
    if left.item is None or right.item is None:
        return left
    item = _unify(left.item, right.item)
    return None if item is None else _Type(left.kind, item)


# --- lexer ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    """name, number, string, op or end."""
    text: str
    offset: int


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_NUMBER_LITERAL = re.compile(
    r"0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+)[uU]?"
)
_OPERATORS: Final = (
    # Two-character operators first, so that "<=" is not read as "<" then "=".
    *("==", "!=", "<=", ">=", "&&", "||"),
    *("<", ">", "+", "-", "*", "/", "%", "!", "?", ":", "(", ")", "[", "]", "{", "}", ",", "."),
)
_STRING_PREFIX = re.compile(r"(?i:r|b|rb|br)?(?='|\")")


class _Refusal(Exception):
    """A problem at an offset of the expression text (internal; becomes ExpressionError)."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    length = len(text)
    while position < length:
        char = text[position]
        if char in " \t\r\n\f":
            position += 1
            continue
        if text.startswith("//", position):  # CEL comments run to the end of the line
            end = text.find("\n", position)
            position = length if end < 0 else end
            continue
        prefix = _STRING_PREFIX.match(text, position)
        if prefix is not None:
            end = _string_end(text, position, prefix.end())
            tokens.append(_Token("string", text[position:end], position))
            position = end
            continue
        if char.isascii() and (char.isalpha() or char == "_"):
            match = _NAME.match(text, position)
            assert match is not None  # the first character matches by construction
            tokens.append(_Token("name", match.group(), position))
            position = match.end()
            continue
        if char.isascii() and char.isdigit():
            match = _NUMBER_LITERAL.match(text, position)
            assert match is not None
            end = match.end()
            if end < length and (text[end].isalnum() or text[end] == "_"):
                raise _Refusal(position, f"malformed number {text[position : end + 1]!r}")
            tokens.append(_Token("number", match.group(), position))
            position = end
            continue
        for operator in _OPERATORS:
            if text.startswith(operator, position):
                tokens.append(_Token("op", operator, position))
                position += len(operator)
                break
        else:
            if char == "=":
                raise _Refusal(position, "'=' is not an operator; compare with '=='")
            raise _Refusal(position, f"unexpected character {char!r}")
    tokens.append(_Token("end", "", length))
    return tokens


def _string_end(text: str, start: int, quote_at: int) -> int:
    """The offset just past the string literal starting at ``start`` (CEL spec, "Syntax")."""
    raw = "r" in text[start:quote_at].lower()
    quote = text[quote_at : quote_at + 3]
    if quote not in ('"""', "'''"):
        quote = text[quote_at]
    position = quote_at + len(quote)
    while position < len(text):
        if text.startswith(quote, position):
            return position + len(quote)
        char = text[position]
        if char == "\\" and not raw:
            position += 2
            continue
        if char == "\n" and len(quote) == 1:
            break
        position += 1
    raise _Refusal(start, "string literal is not closed")


# --- parser, checker and emitter in one pass --------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Typed:
    """A checked piece of expression: its type, its CEL text, where it starts."""

    type: _Type
    code: str
    offset: int


@dataclass(frozen=True, slots=True)
class _Signature:
    params: tuple[str, ...]
    result: _Type
    variadic: bool = False
    """The last parameter repeats (at least ``len(params)`` arguments)."""


_SIGNATURES: Final[Mapping[str, _Signature]] = {
    "abs": _Signature(("number",), _NUMBER),
    "min": _Signature(("number", "number"), _NUMBER, variadic=True),
    "max": _Signature(("number", "number"), _NUMBER, variadic=True),
    "clamp": _Signature(("number", "number", "number"), _NUMBER),
    "hour": _Signature((), _NUMBER),
    "minute": _Signature((), _NUMBER),
    "weekday": _Signature((), _NUMBER),
    "sun_elevation": _Signature((), _NUMBER),
    "quality": _Signature(("tag",), _STRING),
    "since_change": _Signature(("tag",), _NUMBER),
    "avg": _Signature(("numeric_tag", "window"), _NUMBER),
    "min_over": _Signature(("numeric_tag", "window"), _NUMBER),
    "max_over": _Signature(("numeric_tag", "window"), _NUMBER),
}
_STRING_METHODS: Final = frozenset({"contains", "startsWith", "endsWith", "matches"})
_MACROS: Final = frozenset({"all", "exists", "exists_one", "filter"})
_MACRO_VARIABLE = re.compile(r"^[a-z][a-z0-9_]*$")


class _Parser:
    """Recursive descent over the CEL grammar (CEL spec, "Syntax"), checking and re-emitting."""

    def __init__(self, text: str, tags: Mapping[str, TagSignature]) -> None:
        self._text = text
        self._tokens = _tokenize(text)
        self._index = 0
        self._tags = tags
        self._depth = 0
        self._scope: dict[str, _Type] = {}
        self._in_macro_body = False
        self.flat_names: dict[str, str] = {}
        """tag -> CEL variable, in order of first use."""
        self.named: set[str] = set()
        self.windows: dict[str, float] = {}
        self.functions: set[str] = set()

    # token helpers

    def _peek(self, ahead: int = 0) -> _Token:
        return self._tokens[min(self._index + ahead, len(self._tokens) - 1)]

    def _next(self) -> _Token:
        token = self._tokens[self._index]
        if token.kind != "end":
            self._index += 1
        return token

    def _at(self, text: str) -> bool:
        token = self._peek()
        return token.kind == "op" and token.text == text

    def _expect(self, text: str) -> _Token:
        token = self._next()
        if token.kind != "op" or token.text != text:
            raise _Refusal(token.offset, f"expected '{text}', found {_describe(token)}")
        return token

    def _enter(self, offset: int) -> None:
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise _Refusal(offset, f"nested more than {MAX_NESTING} levels deep")

    # grammar

    def parse(self) -> _Typed:
        result = self._expression()
        token = self._peek()
        if token.kind != "end":
            raise _Refusal(token.offset, f"unexpected {_describe(token)}")
        return result

    def _expression(self) -> _Typed:
        start = self._peek().offset
        self._enter(start)
        condition = self._binary(0)
        if not self._at("?"):
            self._depth -= 1
            return condition
        self._next()
        if condition.type.kind not in ("bool", "any"):
            raise _Refusal(condition.offset, f"the condition before '?' is a {condition.type}")
        when_true = self._binary(0)
        self._expect(":")
        when_false = self._expression()
        common = _unify(when_true.type, when_false.type)
        if common is None:
            raise _Refusal(
                when_false.offset,
                f"the two results of '?:' differ: {when_true.type} and {when_false.type}",
            )
        self._depth -= 1
        return _Typed(common, f"{condition.code} ? {when_true.code} : {when_false.code}", start)

    # Binary levels from loosest to tightest (CEL spec operator precedence); each level is
    # parsed as a loop, so a long sum adds no nesting.
    _LEVELS: Final = (
        ("||",),
        ("&&",),
        ("==", "!=", "<", "<=", ">", ">=", "in"),
        ("+", "-"),
        ("*", "/", "%"),
    )

    def _binary(self, level: int) -> _Typed:
        if level == len(self._LEVELS):
            return self._unary()
        operators = self._LEVELS[level]
        left = self._binary(level + 1)
        while True:
            token = self._peek()
            is_operator = (token.kind == "op" and token.text in operators) or (
                token.kind == "name" and token.text == "in" and "in" in operators
            )
            if not is_operator:
                return left
            self._next()
            right = self._binary(level + 1)
            result = _operator_type(token, left, right)
            left = _Typed(result, f"{left.code} {token.text} {right.code}", left.offset)

    def _unary(self) -> _Typed:
        operators: list[_Token] = []
        while self._at("!") or self._at("-"):
            operators.append(self._next())
        if not operators:
            return self._member()
        self._enter(operators[0].offset)
        operand = self._member()
        self._depth -= 1
        wanted = _BOOL if operators[-1].text == "!" else _NUMBER
        for operator in operators:
            expected = _BOOL if operator.text == "!" else _NUMBER
            if expected != wanted:
                raise _Refusal(operator.offset, f"'{operator.text}' does not apply to a {wanted}")
        if _unify(operand.type, wanted) is None:
            raise _Refusal(
                operators[-1].offset, f"'{operators[-1].text}' does not apply to a {operand.type}"
            )
        code = "".join(operator.text for operator in operators) + operand.code
        return _Typed(wanted, code, operators[0].offset)

    def _member(self) -> _Typed:
        value = self._primary()
        while True:
            if self._at("."):
                self._next()
                name = self._next()
                if name.kind != "name":
                    raise _Refusal(
                        name.offset, f"expected a name after '.', found {_describe(name)}"
                    )
                value = self._selections(value, name.text.split("."), name.offset)
            elif self._at("["):
                value = self._index_into(value)
            elif self._at("("):
                raise _Refusal(self._peek().offset, "only named functions can be called")
            else:
                return value

    def _selections(self, value: _Typed, parts: list[str], offset: int) -> _Typed:
        """Apply ``.a.b`` selections, the last one a method call if '(' follows."""
        for position, part in enumerate(parts):
            last = position == len(parts) - 1
            if last and self._at("("):
                return self._method(value, part, offset)
            value = self._select(value, part, offset)
            offset += len(part) + 1
        return value

    def _select(self, value: _Typed, field: str, offset: int) -> _Typed:
        if value.type.kind == "map" and value.type.item is not None:
            return _Typed(value.type.item, f"{value.code}.{field}", value.offset)
        if value.type.kind == "any":
            return _Typed(_ANY, f"{value.code}.{field}", value.offset)
        raise _Refusal(offset, f"a {value.type} has no field '{field}'")

    def _index_into(self, value: _Typed) -> _Typed:
        bracket = self._next()
        index = self._expression()
        self._expect("]")
        kind = value.type.kind
        item = value.type.item or _ANY
        if kind == "list":
            if _unify(index.type, _NUMBER) is None:
                raise _Refusal(index.offset, f"a list index must be a number, not a {index.type}")
            # Every number is a double; CEL indexes lists with integers.
            return _Typed(item, f"{value.code}[int({index.code})]", value.offset)
        if kind == "map":
            if _unify(index.type, _STRING) is None:
                raise _Refusal(index.offset, f"a map key must be a string, not a {index.type}")
            return _Typed(item, f"{value.code}[{index.code}]", value.offset)
        raise _Refusal(bracket.offset, f"a {value.type} cannot be indexed")

    def _method(self, target: _Typed, name: str, offset: int) -> _Typed:
        if name in _MACROS:
            return self._macro(target, name, offset)
        if name == "map":
            raise _Refusal(offset, "the map() macro is not available; use filter, all or exists")
        arguments = self._arguments()
        if name == "size":
            if arguments:
                raise _Refusal(offset, "size() takes no argument when called as a method")
            return self._size(target, offset)
        if name in _STRING_METHODS:
            if target.type.kind not in ("string", "any"):
                raise _Refusal(offset, f"{name}() applies to a string, not a {target.type}")
            if len(arguments) != 1 or _unify(arguments[0].type, _STRING) is None:
                raise _Refusal(offset, f"{name}() takes one string")
            return _Typed(_BOOL, f"{target.code}.{name}({arguments[0].code})", target.offset)
        raise _Refusal(offset, f"unknown method '{name}'")

    def _size(self, target: _Typed, offset: int) -> _Typed:
        if target.type.kind not in ("string", "list", "map", "any"):
            raise _Refusal(offset, f"size() applies to a string, list or map, not a {target.type}")
        # CEL's size() is an int; every number here is a double.
        return _Typed(_NUMBER, f"double(size({target.code}))", target.offset)

    def _macro(self, target: _Typed, name: str, offset: int) -> _Typed:
        # CEL macros are the language's only loops (CEL spec, "Macros"). Nested inside another
        # macro's body they would multiply the work, so they are refused there.
        if self._in_macro_body:
            raise _Refusal(offset, f"{name}() inside another macro's body is not allowed")
        if target.type.kind == "list":
            item = target.type.item or _ANY
        elif target.type.kind == "map":
            item = _STRING
        elif target.type.kind == "any":
            item = _ANY
        else:
            raise _Refusal(offset, f"{name}() applies to a list or map, not a {target.type}")
        self._expect("(")
        variable = self._next()
        if variable.kind != "name" or not _MACRO_VARIABLE.match(variable.text):
            raise _Refusal(variable.offset, f"{name}() needs a plain variable name first")
        if variable.text in _RESERVED or variable.text in self._scope:
            raise _Refusal(variable.offset, f"'{variable.text}' cannot be used as a variable name")
        self._expect(",")
        self._scope[variable.text] = item
        self._in_macro_body = True
        try:
            body = self._expression()
        finally:
            self._in_macro_body = False
            del self._scope[variable.text]
        self._expect(")")
        if _unify(body.type, _BOOL) is None:
            raise _Refusal(body.offset, f"the body of {name}() must be a bool, not a {body.type}")
        result = target.type if name == "filter" else _BOOL
        code = f"{target.code}.{name}({variable.text}, {body.code})"
        return _Typed(result, code, target.offset)

    def _arguments(self) -> list[_Typed]:
        self._expect("(")
        arguments: list[_Typed] = []
        if not self._at(")"):
            arguments.append(self._expression())
            while self._at(","):
                self._next()
                arguments.append(self._expression())
        self._expect(")")
        return arguments

    def _primary(self) -> _Typed:
        token = self._next()
        if token.kind == "number":
            return _Typed(_NUMBER, _number_code(token), token.offset)
        if token.kind == "string":
            if token.text[0] in "bB" or token.text[:2].lower() == "rb":
                raise _Refusal(token.offset, "bytes literals are not supported")
            return _Typed(_STRING, token.text, token.offset)
        if token.kind == "name":
            return self._name(token)
        if token.kind == "op" and token.text == "(":
            inner = self._expression()
            self._expect(")")
            return _Typed(inner.type, f"({inner.code})", token.offset)
        if token.kind == "op" and token.text == "[":
            return self._list(token)
        if token.kind == "op" and token.text == "{":
            return self._map(token)
        if token.kind == "end":
            raise _Refusal(token.offset, "the expression ends where a value is expected")
        raise _Refusal(token.offset, f"unexpected {_describe(token)}")

    def _list(self, bracket: _Token) -> _Typed:
        items: list[_Typed] = []
        item_type = _ANY
        while not self._at("]"):
            item = self._expression()
            common = _unify(item_type, item.type)
            if common is None:
                raise _Refusal(item.offset, f"a list of {item_type} cannot hold a {item.type}")
            item_type = common
            items.append(item)
            if not self._at(","):
                break
            self._next()
        self._expect("]")
        code = "[" + ", ".join(item.code for item in items) + "]"
        return _Typed(_Type("list", item_type), code, bracket.offset)

    def _map(self, brace: _Token) -> _Typed:
        entries: list[str] = []
        value_type = _ANY
        while not self._at("}"):
            key = self._expression()
            if _unify(key.type, _STRING) is None:
                raise _Refusal(key.offset, f"map keys must be strings, not a {key.type}")
            self._expect(":")
            value = self._expression()
            common = _unify(value_type, value.type)
            if common is None:
                raise _Refusal(value.offset, f"a map of {value_type} cannot hold a {value.type}")
            value_type = common
            entries.append(f"{key.code}: {value.code}")
            if not self._at(","):
                break
            self._next()
        self._expect("}")
        return _Typed(_Type("map", value_type), "{" + ", ".join(entries) + "}", brace.offset)

    def _name(self, token: _Token) -> _Typed:
        parts = token.text.split(".")
        if len(parts) == 1:
            word = parts[0]
            if word in ("true", "false"):
                return _Typed(_BOOL, word, token.offset)
            if word == "null":
                raise _Refusal(token.offset, "null is not supported: every input has a value")
            if self._at("("):
                return self._call(word, token.offset)
            if word in self._scope:
                return _Typed(self._scope[word], word, token.offset)
        elif parts[0] in self._scope:
            variable = _Typed(self._scope[parts[0]], parts[0], token.offset)
            return self._selections(variable, parts[1:], token.offset + len(parts[0]) + 1)
        # Longest known tag name first: ``a.b.c`` is the tag ``a.b.c`` if it exists, else the
        # tag ``a.b`` with a field or method ``c``.
        for count in range(len(parts), 0, -1):
            tag = ".".join(parts[:count])
            if tag in self._tags:
                value = self._tag_value(tag, token.offset)
                rest = parts[count:]
                if not rest:
                    return value
                return self._selections(value, rest, token.offset + len(tag) + 1)
        if self._at("("):
            raise _Refusal(token.offset, f"unknown function '{token.text}'")
        if len(parts) == 1 and parts[0] in _RESERVED:
            raise _Refusal(token.offset, f"'{parts[0]}' is a reserved word of CEL")
        raise _Refusal(token.offset, self._unknown_tag(token.text))

    def _unknown_tag(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._tags), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"unknown tag '{name}'{hint}"

    def _tag_value(self, tag: str, offset: int) -> _Typed:
        data_type = self._tags[tag].data_type
        value_type = _TAG_TYPES.get(data_type)
        if value_type is None:
            raise _Refusal(
                offset, f"{tag} is a {data_type.value} tag; its value cannot be used here"
            )
        self.named.add(tag)
        flat = self.flat_names.setdefault(tag, f"_t{len(self.flat_names)}")
        return _Typed(value_type, flat, offset)

    def _call(self, name: str, offset: int) -> _Typed:
        if name == "size":
            arguments = self._arguments()
            if len(arguments) != 1:
                raise _Refusal(offset, "size() takes one argument")
            return self._size(arguments[0], offset)
        if name in ("double", "string"):
            arguments = self._arguments()
            allowed = ("number", "string", "any")
            if len(arguments) != 1 or arguments[0].type.kind not in allowed:
                raise _Refusal(offset, f"{name}() takes one number or string")
            result = _NUMBER if name == "double" else _STRING
            return _Typed(result, f"{name}({arguments[0].code})", offset)
        if name in _MACROS or name in ("map", "has"):
            raise _Refusal(offset, f"{name}() is a macro; write it as list.{name}(x, ...)")
        signature = _SIGNATURES.get(name)
        if signature is None:
            close = difflib.get_close_matches(name, list(_SIGNATURES), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise _Refusal(offset, f"unknown function '{name}'{hint}")
        self.functions.add(name)
        self._expect("(")
        codes: list[str] = []
        tag_argument = ""
        position = 0
        while not self._at(")"):
            if position >= len(signature.params) and not signature.variadic:
                raise _Refusal(self._peek().offset, f"{name}() takes {_count(signature)}")
            param = signature.params[min(position, len(signature.params) - 1)]
            if param in ("tag", "numeric_tag"):
                tag_argument = self._tag_argument(name, param)
                codes.append(f'"{tag_argument}"')
            elif param == "window":
                seconds = self._window_argument(name)
                self.windows[tag_argument] = max(self.windows.get(tag_argument, 0.0), seconds)
                codes.append(repr(seconds))
            else:
                argument = self._expression()
                if _unify(argument.type, _NUMBER) is None:
                    raise _Refusal(
                        argument.offset, f"{name}() takes numbers, not a {argument.type}"
                    )
                codes.append(argument.code)
            position += 1
            if not self._at(","):
                break
            self._next()
        closing = self._expect(")")
        if position < len(signature.params):
            raise _Refusal(closing.offset, f"{name}() takes {_count(signature)}")
        return _Typed(signature.result, f"{name}({', '.join(codes)})", offset)

    def _tag_argument(self, function: str, param: str) -> str:
        token = self._next()
        if token.kind != "name" or token.text not in self._tags:
            if token.kind == "name" and "." in token.text:
                raise _Refusal(token.offset, self._unknown_tag(token.text))
            raise _Refusal(token.offset, f"{function}() takes a tag name, e.g. water.tank1.level")
        if not (self._at(",") or self._at(")")):
            raise _Refusal(self._peek().offset, f"{function}() takes a bare tag name")
        data_type = self._tags[token.text].data_type
        if param == "numeric_tag" and data_type not in (DataType.FLOAT, DataType.INT):
            raise _Refusal(
                token.offset, f"{function}() needs a numeric tag; {token.text} is {data_type.value}"
            )
        self.named.add(token.text)
        return token.text

    def _window_argument(self, function: str) -> float:
        token = self._next()
        try:
            if token.kind == "string" and "\\" not in token.text and token.text[0] in "'\"":
                return parse_window(token.text.strip("'\""))
            if token.kind == "number":
                return check_window(float(_number_value(token)))
        except ValueError as err:
            raise _Refusal(token.offset, f"{function}(): {err}") from err
        raise _Refusal(token.offset, f'{function}() takes a window like "15m" as second argument')


def _count(signature: _Signature) -> str:
    count = len(signature.params)
    if signature.variadic:
        return f"at least {count} arguments"
    return f"{count} argument{'s' if count != 1 else ''}"


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the expression"
    return f"'{token.text}'"


def _number_value(token: _Token) -> float:
    text = token.text
    if text[-1] in "uU":
        raise _Refusal(
            token.offset, "unsigned literals are not supported: every number is a double"
        )
    try:
        value = float(int(text, 16)) if text[:2] in ("0x", "0X") else float(text)
    except OverflowError as err:
        raise _Refusal(token.offset, f"number {text} is out of range") from err
    if not math.isfinite(value):
        raise _Refusal(token.offset, f"number {text} is out of range")
    return value


def _number_code(token: _Token) -> str:
    # "Every number is a double": integer literals become double literals, so that they meet
    # numeric tags (bound as doubles) without CEL's int/double overload errors.
    return repr(_number_value(token))


def _operator_type(operator: _Token, left: _Typed, right: _Typed) -> _Type:
    text = operator.text
    if text in ("||", "&&"):
        for side in (left, right):
            if _unify(side.type, _BOOL) is None:
                raise _Refusal(side.offset, f"'{text}' needs bools, this is a {side.type}")
        return _BOOL
    if text in ("==", "!="):
        if _unify(left.type, right.type) is None:
            raise _Refusal(operator.offset, f"cannot compare a {left.type} with a {right.type}")
        return _BOOL
    if text in ("<", "<=", ">", ">="):
        common = _unify(left.type, right.type)
        if common is None or common.kind not in ("number", "string", "any"):
            raise _Refusal(operator.offset, f"cannot order a {left.type} and a {right.type}")
        return _BOOL
    if text == "in":
        container = right.type
        if container.kind == "list":
            member = container.item or _ANY
        elif container.kind == "map":
            member = _STRING
        elif container.kind == "any":
            member = _ANY
        else:
            raise _Refusal(operator.offset, f"'in' needs a list or map, not a {container}")
        if _unify(left.type, member) is None:
            raise _Refusal(operator.offset, f"a {left.type} is never in a {container}")
        return _BOOL
    if text == "%":
        raise _Refusal(operator.offset, "'%' is not available: every number is a double")
    common = _unify(left.type, right.type)
    allowed = ("number", "string", "list", "any") if text == "+" else ("number", "any")
    if common is None or common.kind not in allowed:
        raise _Refusal(
            operator.offset, f"cannot apply '{text}' to a {left.type} and a {right.type}"
        )
    return common


# --- compiled expressions ---------------------------------------------------------------------

_AS_NUMBER: Final = 0
_AS_BOOL: Final = 1
_AS_STRING: Final = 2
_BINDING_KINDS: Final = {"number": _AS_NUMBER, "bool": _AS_BOOL, "string": _AS_STRING}
_FLAT_NAME = re.compile(r"\b_t(\d+)\b")


class _ProbeContext:
    """Typed stand-ins for the live state, for the compile-time probe run."""

    def now(self) -> datetime:
        return datetime(2000, 1, 1, tzinfo=UTC)

    def quality(self, tag: str) -> Quality:
        return Quality.good()

    def since_change(self, tag: str) -> float:
        return 0.0

    def window(self, tag: str, seconds: float, statistic: str) -> float:
        return 0.0


class CompiledExpression:
    """A checked expression, ready to evaluate many times (not thread-safe: one caller)."""

    __slots__ = (
        "_add_variable",
        "_bindings",
        "_context",
        "_exact_type",
        "_flat_to_tag",
        "_holder",
        "_program",
        "_where",
        "inputs",
        "referenced",
        "result_kind",
        "source",
        "windows",
    )

    def __init__(
        self,
        source: Expression,
        program: cel.Program,
        bindings: tuple[tuple[str, str, int], ...],
        referenced: frozenset[str],
        windows: Mapping[str, float],
        result_kind: ValueKind,
        functions: Mapping[str, Callable[..., object]],
        holder: ContextHolder,
    ) -> None:
        self.source = source
        self.inputs = frozenset(tag for _, tag, _ in bindings)
        self.referenced = referenced
        self.windows = dict(windows)
        self.result_kind = result_kind
        self._program = program
        self._bindings = bindings
        self._holder = holder if functions else None
        # Results of these types need no further check (numbers do: they must be finite).
        self._exact_type: type | None = {ValueKind.BOOL: bool, ValueKind.STRING: str}.get(
            result_kind
        )
        # One CEL context for the life of the expression, its variables overwritten before each
        # run: measured faster than building a new dict or context per evaluation.
        self._context = cel.Context(functions=dict(functions))
        self._add_variable = self._context.add_variable
        self._flat_to_tag = {flat: tag for flat, tag, _ in bindings}
        self._where = str(source.spot)

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source.text!r}, {self.result_kind.value})"

    def evaluate(self, values: Mapping[str, Value | None], context: EvaluationContext) -> Value:
        """The value of the expression for ``values`` (tag -> latest value) and ``context``.

        Raises ExpressionEvaluationError when an input has no value or a value of the wrong
        type, or when the evaluation fails (division by zero, overflow, a failing function).
        """
        add_variable = self._add_variable
        for flat, tag, kind in self._bindings:
            value = values.get(tag)
            if value is None:
                raise ExpressionEvaluationError(f"{self._where}: {tag} has no value")
            if kind == _AS_NUMBER:
                if type(value) is not float:
                    value = self._number(tag, value)
            elif (kind == _AS_BOOL and type(value) is not bool) or (
                kind == _AS_STRING and not isinstance(value, str)
            ):
                raise ExpressionEvaluationError(
                    f"{self._where}: {tag} has a {type(value).__name__} value {value!r}"
                )
            add_variable(flat, value)
        holder = self._holder
        if holder is None:  # no library function: nothing reads the context
            try:
                result = self._program.execute(self._context)
            except Exception as err:  # the engine raises ZeroDivision, Overflow, Type, Runtime
                raise ExpressionEvaluationError(f"{self._where}: {self._untangle(err)}") from err
        else:
            holder.context = context
            holder.error = None
            try:
                result = self._program.execute(self._context)
            except Exception as err:
                raise ExpressionEvaluationError(f"{self._where}: {self._untangle(err)}") from err
            finally:
                holder.context = None
            if holder.error is not None:
                error = holder.error
                holder.error = None
                raise ExpressionEvaluationError(f"{self._where}: {error}") from error
        if type(result) is self._exact_type:
            return cast("Value", result)
        return self._result(result)

    def _number(self, tag: str, value: Value) -> float:
        if isinstance(value, bool | int | float):
            return float(value)
        raise ExpressionEvaluationError(
            f"{self._where}: {tag} has a {type(value).__name__} value {value!r}, not a number"
        )

    def _result(self, result: object) -> Value:
        kind = self.result_kind
        if isinstance(result, bool):
            if kind in (ValueKind.BOOL, ValueKind.ANY):
                return result
        elif isinstance(result, int | float):
            if kind in (ValueKind.NUMBER, ValueKind.ANY):
                number = float(result)
                if not math.isfinite(number):
                    raise ExpressionEvaluationError(f"{self._where}: the result is {number}")
                return number
        elif isinstance(result, str) and kind in (ValueKind.STRING, ValueKind.ANY):
            return result
        raise ExpressionEvaluationError(
            f"{self._where}: gave {result!r}, not a {self.result_kind.value}"
        )

    def _untangle(self, error: BaseException) -> str:
        """The engine's message with flat variable names turned back into tag names."""
        message = str(error).split("\n", 1)[0]
        return _FLAT_NAME.sub(
            lambda match: self._flat_to_tag.get(match.group(), match.group()), message
        )


class ExpressionCompiler:
    """Compiles expressions against a site's tags and location."""

    def __init__(
        self, tags: Mapping[str, TagSignature], site: SiteLocation, *, max_length: int = 2000
    ) -> None:
        self._tags = dict(tags)
        self._site = site
        self._max_length = max_length

    @property
    def tags(self) -> Mapping[str, TagSignature]:
        """The tags expressions may name."""
        return self._tags

    def compile(
        self, expression: Expression, *, expect: ValueKind = ValueKind.ANY
    ) -> CompiledExpression:
        """Check ``expression`` and compile it; raises ExpressionError naming file:line:column."""
        text = expression.text
        if len(text) > self._max_length:
            raise ExpressionError(
                expression.spot,
                f"the expression is {len(text)} characters long; the limit is {self._max_length}",
            )
        if not text.strip():
            raise ExpressionError(expression.spot, "the expression is empty")
        try:
            parser = _Parser(text, self._tags)
            checked = parser.parse()
        except _Refusal as refusal:
            raise ExpressionError(_spot_at(expression, refusal.offset), refusal.reason) from None
        kind = _RESULT_KINDS.get(checked.type.kind)
        if kind is None:
            raise ExpressionError(
                expression.spot, f"gives a {checked.type}; an expression must give a single value"
            )
        if expect is not ValueKind.ANY and kind not in (expect, ValueKind.ANY):
            raise ExpressionError(
                expression.spot, f"must give a {expect.value}, but gives a {kind.value}"
            )
        if kind is ValueKind.ANY:
            kind = expect
        try:
            program = cel.compile(checked.code)
        except ValueError as err:
            reason = str(err).split("\n", 1)[0]
            raise ExpressionError(expression.spot, f"not accepted by CEL: {reason}") from err
        bindings = tuple(
            (flat, tag, _BINDING_KINDS[_TAG_TYPES[self._tags[tag].data_type].kind])
            for tag, flat in parser.flat_names.items()
        )
        holder = ContextHolder()
        functions = build_functions(holder, self._site, frozenset(parser.functions))
        compiled = CompiledExpression(
            expression,
            program,
            bindings,
            frozenset(parser.named),
            parser.windows,
            kind,
            functions,
            holder,
        )
        self._probe(compiled, bindings)
        return compiled

    def _probe(
        self, compiled: CompiledExpression, bindings: tuple[tuple[str, str, int], ...]
    ) -> None:
        """Run once on typed stand-in values: an overload the static check missed shows here."""
        stand_ins: dict[int, Value] = {_AS_NUMBER: 0.0, _AS_BOOL: False, _AS_STRING: ""}
        values = {tag: stand_ins[kind] for _, tag, kind in bindings}
        try:
            compiled.evaluate(values, _ProbeContext())
        except ExpressionEvaluationError as err:
            cause = err.__cause__
            # Value-dependent failures (division by zero on the stand-in zero) are not
            # type errors; an overload or unknown-name error is.
            if isinstance(cause, TypeError) or (
                isinstance(cause, RuntimeError) and "Undefined" in str(cause)
            ):
                reason = str(err).split(": ", 1)[-1]
                raise ExpressionError(compiled.source.spot, f"type mismatch: {reason}") from err


def _spot_at(expression: Expression, offset: int) -> SourceSpot:
    """The file spot of ``offset`` in the expression text (its first line starts at the spot)."""
    text = expression.text
    line = text.count("\n", 0, offset)
    spot = expression.spot
    if line == 0:
        return SourceSpot(spot.file, spot.line, spot.column + offset)
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return SourceSpot(spot.file, spot.line + line, column)
