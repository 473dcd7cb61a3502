"""report.md: the report for people, rendered from report.json's content (same sections and
order as report.html)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from tdd_priv.report.escape import markdown_code, markdown_text
from tdd_priv.report.sections import (
    Badge,
    Block,
    Cell,
    FigureRef,
    Paragraph,
    Table,
    build_sections,
    per_class_words,
    utility_rows,
)

__all__ = ["per_class_words", "render_markdown", "utility_rows"]


_CODE_SPAN = re.compile(r"(`[^`]*`)")


def _inline(text: str, *, table: bool = False) -> str:
    """Section text as Markdown: template code spans kept, data shown literally (see
    tdd_priv.report.escape), pipes escaped inside table cells, line breaks as spaces."""
    parts = []
    for part in _CODE_SPAN.split(text.replace("\n", " ")):
        if len(part) >= 2 and part[0] == part[-1] == "`":
            code = markdown_code(part[1:-1])
            fence, pad = ("``", " ") if "`" in code else ("`", "")
            rendered = f"{fence}{pad}{code}{pad}{fence}"
            if table:  # GFM ends a cell at an unescaped pipe, even inside a code span
                rendered = rendered.replace("|", "\\|")
        else:
            rendered = markdown_text(part, table=table)
        parts.append(rendered)
    return "".join(parts)


def _cell(cell: Cell) -> str:
    if isinstance(cell, Badge):
        return f"**{_inline(cell.text, table=True)}**"
    if isinstance(cell, tuple):
        return " ".join(_cell(part) for part in cell).strip()
    return _inline(cell, table=True)


def _block(block: Block) -> list[str]:
    if isinstance(block, Paragraph):
        text = _inline(block.text)
        return [f"> {text}" if block.tone == "warn" else text, ""]
    if isinstance(block, Table):
        header = "| " + " | ".join(_inline(title, table=True) for title in block.header) + " |"
        lines = [header, "|" + "---|" * len(block.header)]
        lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in block.rows]
        return [*lines, ""]
    if isinstance(block, FigureRef):
        caption = _inline(block.caption)
        return [f"![{caption}]({block.path})", "", f"*{caption}*", ""]
    raise TypeError(f"unknown report block {block!r}")


def render_markdown(
    report: Mapping[str, Any], *, sections: Collection[str] | None = None, figures: bool = True
) -> str:
    """The report as markdown; `sections` keeps only those section keys (e.g. summary, utility,
    verdicts) and `figures=False` drops figure references (for places that cannot show them)."""
    lines = [f"# tdd-priv report — {report['run_id']}", ""]
    if "created_at" in report:
        lines += [f"Created {report['created_at']}.", ""]
    for section in build_sections(report):
        if sections is not None and section.key not in sections:
            continue
        if section.key != "summary":
            lines += [f"## {_inline(section.title)}", ""]
        for block in section.blocks:
            if figures or not isinstance(block, FigureRef):
                lines += _block(block)
    return "\n".join(lines).rstrip("\n") + "\n"
