"""Data in a rendered report is shown, never interpreted.

Label names, group values, dataset names, policy check names and notes come from files the user
(or whoever made the data) controls. The sections of report.md and report.html are built from
templates that use a little inline markup (`code`, **bold**), so a label such as
`<script>…</script>`, `[x](javascript:…)` or `a | b` must not become markup in any renderer.

`protect(report)` replaces every markup-significant character of every string (keys included)
by a private-use code point before the sections are built: templates keep their own markup, and
data cannot add any. Each renderer then turns the placeholders back into the literal characters
in its own way: a Markdown backslash escape (or the plain character inside a code span), an HTML
entity. Control characters (terminal escape sequences included) become spaces. None of the
protected characters occurs in a report's fixed keys ("dp_sgd", "accuracy_mean", ...), so code
that looks values up by those keys is unaffected.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "html_literals",
    "html_text",
    "markdown_code",
    "markdown_text",
    "printable",
    "protect",
]

# Markdown/HTML syntax characters (inline code, emphasis, links and images, raw HTML and
# entities, table cells, strikethrough, headings). Underscores are left alone: fixed report keys
# use them, and they can only ever italicise.
_PROTECTED = "\\`*[]<>&|!~#"
_PLACEHOLDERS = {char: chr(0xE000 + ord(char)) for char in _PROTECTED}
_TO_PLACEHOLDER = str.maketrans(_PLACEHOLDERS)
_LITERALS = {placeholder: char for char, placeholder in _PLACEHOLDERS.items()}
_PLACEHOLDER = re.compile("[" + "".join(_PLACEHOLDERS.values()) + "]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _protect_text(text: str) -> str:
    return _CONTROL.sub(" ", text).translate(_TO_PLACEHOLDER)


def protect(value: Any) -> Any:
    """`value` (a report or any part of it) with every string's markup characters replaced by
    placeholders; numbers, booleans and None unchanged."""
    if isinstance(value, str):
        return _protect_text(value)
    if isinstance(value, Mapping):
        return {protect(key): protect(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [protect(item) for item in value]
    return value


def markdown_text(text: str, *, table: bool = False) -> str:
    """Placeholders as Markdown backslash escapes (CommonMark escapes any ASCII punctuation);
    in a table cell (`table`) the template's own pipes are escaped too."""
    if table:
        text = text.replace("|", _PLACEHOLDERS["|"])
    return _PLACEHOLDER.sub(lambda match: "\\" + _LITERALS[match.group()], text)


def markdown_code(text: str) -> str:
    """Placeholders inside a code span: the plain characters (code spans are literal)."""
    return _PLACEHOLDER.sub(lambda match: _LITERALS[match.group()], text)


def html_literals(text: str) -> str:
    """Placeholders in already-escaped HTML as entities (the rest of `text` is left as is)."""
    return _PLACEHOLDER.sub(lambda match: html.escape(_LITERALS[match.group()]), text)


def html_text(text: str) -> str:
    """Text (placeholders included) as HTML character data, safe in attributes too."""
    literal = _PLACEHOLDER.sub(lambda match: _LITERALS[match.group()], text)
    return html.escape(literal, quote=True)


def printable(text: str) -> str:
    """Text for a terminal: control characters (escape sequences included) except newlines
    and tabs become spaces."""
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", " ", text)
