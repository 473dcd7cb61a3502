"""report.md: the report for people, rendered from report.json's content (same sections and
order as report.html)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from tdd_priv.report.sections import (
    Badge,
    Block,
    Cell,
    FigureRef,
    Paragraph,
    Table,
    build_sections,
    utility_rows,
)

__all__ = ["render_markdown", "utility_rows"]


def _cell(cell: Cell) -> str:
    if isinstance(cell, Badge):
        return f"**{cell.text}**"
    if isinstance(cell, tuple):
        return " ".join(_cell(part) for part in cell).strip()
    return cell.replace("|", "\\|").replace("\n", " ")


def _block(block: Block) -> list[str]:
    if isinstance(block, Paragraph):
        return [f"> {block.text}" if block.tone == "warn" else block.text, ""]
    if isinstance(block, Table):
        header = "| " + " | ".join(block.header) + " |"
        lines = [header, "|" + "---|" * len(block.header)]
        lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in block.rows]
        return [*lines, ""]
    if isinstance(block, FigureRef):
        return [f"![{block.caption}]({block.path})", "", f"*{block.caption}*", ""]
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
            lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if figures or not isinstance(block, FigureRef):
                lines += _block(block)
    return "\n".join(lines).rstrip("\n") + "\n"
