"""Escape what comes from data: labels, group values, texts and file names that look like HTML,
Markdown links, table pipes or terminal escapes are shown as text by every renderer (report.md
rendered to HTML, report.html, the CLI summary), never interpreted."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from tdd_priv.cli import main

HOSTILE_LABELS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "[click](javascript:alert(1))",
    "a | b \x1b[2J",
]
HOSTILE_GROUPS = ["<b onmouseover=alert(1)>g</b>", "g|h", "![x](javascript:y)", "**bold** `code`"]


class _Tags(HTMLParser):
    """Every start tag with its attributes, and each table's cell counts per row."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: list[list[int]] = []
        self._cells = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.rows.append([])
        elif tag == "tr":
            self._cells = 0
        elif tag in ("td", "th"):
            self._cells += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self.rows:
            self.rows[-1].append(self._cells)


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def _assert_inert(html: str, *, allowed: set[str]) -> None:
    parser = _parse(html)
    names = {tag for tag, _ in parser.tags}
    assert names <= allowed, f"unexpected tags {names - allowed}"
    for tag, attributes in parser.tags:
        assert not [a for a in attributes if a.startswith("on")], (tag, attributes)
        for value in attributes.values():
            assert not (value or "").strip().lower().startswith("javascript:"), (tag, value)
    for table in parser.rows:
        assert len(set(table)) == 1, f"a table row broke into other cells: {table}"


@pytest.fixture(scope="module")
def hostile_run(tiny_ag_news: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = pd.read_csv(tiny_ag_news)
    frame["label"] = [HOSTILE_LABELS[i] for i in frame.label]
    frame["group"] = [HOSTILE_GROUPS[i % 4] for i in range(len(frame))]
    frame.loc[::7, "text"] = "<script>steal()</script> [x](javascript:alert(1)) | " + frame.text
    folder = tmp_path_factory.mktemp("hostile")
    data = folder / "news <b onclick=x>[y](javascript:z).csv"  # the name becomes the dataset's
    frame.to_csv(data, index=False)
    out = folder / "run"
    args = [
        "run",
        "--data",
        str(data),
        "--split-column",
        "split",
        "--group-column",
        "group",
        "--method",
        "herding",
        "--no-dp",
        "--per-class",
        "3",
        "--eval-seeds",
        "1",
        "--heads",
        "linear",
        "--orchestrator",
        "local",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    return out


def test_report_md_rendered_to_html_holds_no_markup_from_data(hostile_run: Path) -> None:
    markdown = (hostile_run / "report.md").read_text(encoding="utf-8")
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    allowed = {"h1", "h2", "p", "strong", "em", "code", "blockquote", "img"}
    _assert_inert(html, allowed=allowed | {"table", "thead", "tbody", "tr", "th", "td"})
    for tag, attributes in _parse(html).tags:
        if tag == "img":
            assert str(attributes["src"]).startswith("figures/")
    for label in HOSTILE_LABELS[:3]:  # shown, as text
        assert label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
            '"', "&quot;"
        ) in html or label in html.replace("&quot;", '"')


def test_report_html_holds_no_markup_from_data(hostile_run: Path) -> None:
    html = (hostile_run / "report.html").read_text(encoding="utf-8")
    allowed = {"html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "p", "section"}
    allowed |= {"table", "thead", "tbody", "tr", "th", "td", "span", "strong", "code", "figure"}
    _assert_inert(html, allowed=allowed | {"img", "figcaption"})
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_cli_summary_prints_no_terminal_escapes(
    hostile_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tdd_priv.cli import _summary
    from tdd_priv.pipeline import RunResult
    from tdd_priv.report.escape import printable

    report = json.loads((hostile_run / "report.json").read_text(encoding="utf-8"))
    assert any("\x1b" in name for name in report["dataset"]["classes"])  # the data had one
    printed = printable(_summary(RunResult(out=hostile_run, report=report)))
    assert "\x1b" not in printed
