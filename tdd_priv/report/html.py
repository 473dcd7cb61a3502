"""report.html: one self-contained page (inline CSS, figures embedded as base64 PNG, no
external URLs), with the same sections in the same order as report.md."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tdd_priv.report.claim import PrivacyClaim
from tdd_priv.report.escape import html_literals, html_text
from tdd_priv.report.sections import (
    Badge,
    Block,
    Cell,
    FigureRef,
    Paragraph,
    Section,
    Table,
    build_sections,
)

__all__ = ["render_html"]

_CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa;
        --pass: #1a7f37; --fail: #cf222e; --warn: #9a6700; --info: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 15px/1.55 -apple-system, "Segoe UI", "Helvetica Neue", Arial, sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 28px 32px 64px; }
h1 { font-size: 24px; margin: 0 0 2px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 5px;
     border-bottom: 1px solid var(--line); }
.meta { color: var(--muted); margin: 0 0 18px; font-size: 13px; }
p { margin: 8px 0 12px; }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       background: var(--soft); padding: 1px 4px; border-radius: 4px; word-break: break-all; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { text-align: left; padding: 5px 12px 5px 0; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 13px; }
td.num { font-variant-numeric: tabular-nums; }
.summary { border: 1px solid var(--line); border-left: 5px solid var(--info);
           border-radius: 8px; padding: 12px 18px; background: var(--soft); margin: 12px 0 8px; }
.summary.not-private { border-left-color: var(--fail); }
.summary h2 { margin: 0 0 6px; border: 0; padding: 0; font-size: 17px; }
.summary table { margin: 0; width: 100%; }
.summary td:first-child { width: 95px; font-weight: 600; white-space: nowrap; }
.summary tr:last-child td { border-bottom: 0; }
.badge { display: inline-block; font-size: 12px; font-weight: 700; letter-spacing: .03em;
         padding: 1px 8px; border-radius: 10px; color: #fff; margin-right: 6px; }
.badge.pass { background: var(--pass); } .badge.fail { background: var(--fail); }
.badge.warn { background: var(--warn); } .badge.info { background: var(--info); }
.warn { border-left: 4px solid var(--fail); background: #ffebe9; padding: 8px 12px;
        border-radius: 4px; }
.note { color: var(--muted); font-size: 13px; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
"""

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def _inline(text: str) -> str:
    """Section text as HTML: the template's `code` and **bold** become tags; data (protected
    by tdd_priv.report.escape) becomes character data only."""
    escaped = html.escape(text, quote=False)
    escaped = _CODE.sub(r"<code>\1</code>", escaped)
    return html_literals(_BOLD.sub(r"<strong>\1</strong>", escaped))


def _cell(cell: Cell) -> str:
    if isinstance(cell, Badge):
        return f'<span class="badge {cell.tone}">{html_text(cell.text)}</span>'
    if isinstance(cell, tuple):
        return " ".join(_cell(part) for part in cell)
    return _inline(cell)


def _image(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _block(block: Block, run_dir: Path) -> str:
    if isinstance(block, Paragraph):
        css = f' class="{block.tone}"' if block.tone != "plain" else ""
        return f"<p{css}>{_inline(block.text)}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{html_text(title)}</th>" for title in block.header)
        head_row = f"<thead><tr>{head}</tr></thead>" if any(block.header) else ""
        body = "".join(
            "<tr>" + "".join(f"<td>{_cell(cell)}</td>" for cell in row) + "</tr>"
            for row in block.rows
        )
        return f"<table>{head_row}<tbody>{body}</tbody></table>"
    if isinstance(block, FigureRef):
        caption = html_text(block.caption)
        return (
            f'<figure><img alt="{caption}" src="{_image(run_dir / block.path)}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    raise TypeError(f"unknown report block {block!r}")


def _section(section: Section, run_dir: Path, *, private: bool) -> str:
    blocks = "\n".join(_block(block, run_dir) for block in section.blocks)
    if section.key == "summary":
        css = "summary" if private else "summary not-private"
        return f'<section class="{css}" id="summary"><h2>Summary</h2>\n{blocks}</section>'
    title = html_text(section.title)
    return f'<section id="{html_text(section.key)}"><h2>{title}</h2>\n{blocks}</section>'


def render_html(report: Mapping[str, Any], run_dir: Path) -> str:
    """The page for `report`; figures are read from `run_dir` and embedded."""
    title = f"tdd-priv report — {report['run_id']}"
    private = PrivacyClaim.from_report(report).private
    sections = "\n".join(
        _section(section, run_dir, private=private) for section in build_sections(report)
    )
    created = (
        f"Created {html.escape(str(report.get('created_at', '')))}. "
        if report.get("created_at")
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>{html.escape(title)}</h1>
<p class="meta">{created}Report schema {html.escape(str(report["schema_version"]))}.</p>
{sections}
</main>
</body>
</html>
"""
