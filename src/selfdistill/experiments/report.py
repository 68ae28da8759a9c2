"""Self-contained HTML reports: tables and PNG figures embedded as data URIs."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import staged, write_text_atomic

__all__ = ["html_table", "render_report", "write_report"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.45}
h1{font-size:1.6em} h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#555} .note{color:#555;font-size:.92em}
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) >= 1 or v == 0 else f"{v:.4f}"
    return html.escape(str(v))


def html_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
               headers: Sequence[str] | None = None) -> str:
    """An HTML table of ``rows`` (list of dicts)."""
    if not rows:
        return "<p class='note'>(no rows)</p>"
    cols = list(columns or rows[0].keys())
    head = "".join(f"<th>{html.escape(h)}</th>" for h in (headers or cols))
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(path: Path) -> str:
    data = base64.b64encode(staged(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def render_report(title: str, sections: Sequence[dict[str, Any]]) -> str:
    """HTML text; each section has ``heading`` and any of ``html``, ``table``, ``figure``.

    ``table`` is ``(rows, columns, headers)``; ``figure`` is ``(png_path, caption)``.
    """
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec['heading'])}</h2>")
        if sec.get("html"):
            parts.append(sec["html"])
        if sec.get("table"):
            parts.append(html_table(*sec["table"]))
        if sec.get("figure"):
            png, caption = sec["figure"]
            parts.append(f"<figure><img alt='{html.escape(caption)}' src='{_img(png)}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path: str | Path, title: str, sections: Sequence[dict[str, Any]]) -> Path:
    """Render and write the report atomically."""
    write_text_atomic(path, render_report(title, sections))
    return Path(path)
