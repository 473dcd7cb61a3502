"""Safe YAML reading for files a user hands us: configs, sweeps, policies, option values.

`yaml.safe_load` constructs no arbitrary objects, but it still expands aliases: a few lines of
nested anchors ("billion laughs") expand to billions of nodes and exhaust memory. `load_yaml`
first walks the parser's events, which never expand anything, and refuses a document whose
aliases (`*name`, merge keys `<<: *name` included) are too many, would add too many nodes once
expanded, or refer to themselves; only then does it build the Python value.

It also reads exponents without a decimal point (`1e-3`) as numbers, as YAML 1.2 does (PyYAML
follows YAML 1.1 there and would return the string "1e-3").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tdd_priv.errors import ConfigError

__all__ = ["YamlLimits", "load_yaml"]

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """The safe loader (libyaml's when available), plus YAML 1.2 exponent floats."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


@dataclass(frozen=True)
class YamlLimits:
    """What a document may ask of us. `aliases`: alias nodes in all; `expansion`: nodes that
    the aliases add once expanded, in all; `depth`: nesting of collections."""

    aliases: int = 32
    expansion: int = 10_000
    depth: int = 64


DEFAULT_LIMITS = YamlLimits()


def load_yaml(
    source: str | Path, *, where: str | None = None, limits: YamlLimits = DEFAULT_LIMITS
) -> Any:
    """The value of one YAML document: `source` is the text itself (a str) or a file (a Path).

    Raises ConfigError naming `where` (default: the file, else "YAML text") for a file that is
    missing or not a regular file, invalid YAML, or a document over `limits`. An empty
    document gives None.
    """
    if isinstance(source, Path):
        where = where or str(source)
        text = _read_file(source, where)
    else:
        where = where or "YAML text"
        text = source
    try:
        _check_events(text, where, limits)
        return yaml.load(text, Loader=_Loader)  # a safe loader: no arbitrary objects
    except yaml.YAMLError as error:
        detail = " ".join(str(error).split())  # one line: the CLI prints errors on one
        raise ConfigError(f"{where} is not valid YAML: {detail}") from None


def _read_file(path: Path, where: str) -> str:
    # A FIFO or a device would block or never end: refuse anything but a regular file unread.
    if not path.exists():
        raise ConfigError(f"{where}: no such file. Check the path.")
    if not path.is_file():
        raise ConfigError(
            f"{where}: is not a regular file (a folder, FIFO or device); pass a file."
        )
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{where}: is not UTF-8 text ({error.reason}).") from None


@dataclass
class _Open:
    """A collection being parsed: its size so far (nodes, aliases expanded) and its anchor."""

    size: int
    anchor: str | None


def _check_events(text: str, where: str, limits: YamlLimits) -> None:
    """Refuse the document from its parser events alone (nothing is expanded or built)."""
    sizes: dict[str, int] = {}  # anchor -> size of its node once expanded
    stack: list[_Open] = []
    aliases = added = 0

    def count(size: int) -> None:
        if stack:
            stack[-1].size += size

    for event in yaml.parse(text, Loader=_Loader):
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > limits.aliases:
                raise ConfigError(
                    f"{where}: line {line}: more than {limits.aliases} YAML aliases (*name); "
                    "refused without expanding them. Write the repeated values out."
                )
            if any(frame.anchor == event.anchor for frame in stack):
                raise ConfigError(
                    f"{where}: line {line}: alias *{event.anchor} refers to a node that contains "
                    "it (a recursive structure); write the values out."
                )
            size = sizes.get(str(event.anchor), 1)  # an unknown anchor: the parser says so
            added += size
            if added > limits.expansion:
                raise ConfigError(
                    f"{where}: line {line}: YAML aliases would expand to more than "
                    f"{limits.expansion:,} extra nodes (an alias bomb, 'billion laughs'); "
                    "refused without expanding them. Write the repeated values out."
                )
            count(size)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                sizes[event.anchor] = 1
            count(1)
        elif isinstance(event, yaml.CollectionStartEvent):
            stack.append(_Open(1, event.anchor))
            if len(stack) > limits.depth:
                raise ConfigError(
                    f"{where}: line {line}: collections nested more than {limits.depth} deep."
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            done = stack.pop()
            if done.anchor is not None:
                sizes[done.anchor] = done.size
            count(done.size)
        elif isinstance(event, yaml.DocumentStartEvent):
            sizes.clear()  # anchors are local to a document
