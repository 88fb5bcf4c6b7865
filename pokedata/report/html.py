"""HTML building blocks: escaping by default, the page layout, tables, tiles, pagers.

Every value that reaches a page goes through :func:`h` unless it is :class:`Safe` (markup this module
built). Attribute values are always double-quoted and escaped (``&<>"'``); external links are made only
for ``http(s)://`` URLs; nothing from the data ever lands in a ``<script>`` or an event handler. The
Content-Security-Policy of every page allows script only from the report's own ``assets/`` files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape
from string import Template
from typing import Any

CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "base-uri 'none'; form-action 'none'"
)
NAV = (("index.html", "Overview"), ("classes.html", "Classes"), ("conflicts.html", "Conflicts"),
       ("quarantine.html", "Quarantine"), ("run.html", "Run"))  # fmt: skip

_LAYOUT = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="$csp">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title · poke report</title>
<link rel="stylesheet" href="${up}assets/report.css">
</head><body>
<nav>$nav</nav>
<main><h1>$title</h1>
$body
</main>
<aside id="info" hidden><button type="button" id="info-close" aria-label="close">×</button><dl></dl></aside>
<script src="${up}assets/report.js"></script>
</body></html>
""")


_VOID = frozenset({"img", "input", "br", "hr", "meta", "link"})


class Safe(str):
    """Markup already escaped (built here from escaped parts); ``+`` escapes a plain-string operand."""

    def __add__(self, other: object) -> Safe:
        return Safe(str.__add__(self, h(other)))

    def __radd__(self, other: object) -> Safe:
        return Safe(str.__add__(h(other), self))


def h(value: Any) -> Safe:
    """Escape anything for HTML text or a double-quoted attribute; :class:`Safe` passes through."""
    if isinstance(value, Safe):
        return value
    return Safe(escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[Any], sep: str = "") -> Safe:
    return Safe(sep.join(h(p) for p in parts))


def el(name: str, content: Any = "", **attrs: Any) -> Safe:
    """``<name attr="...">content</name>``; ``class_`` -> ``class``; ``None``/``False`` attributes dropped."""
    parts = [name]
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        key = key.rstrip("_").replace("_", "-")
        parts.append(key if value is True else f'{key}="{h(value)}"')
    if name in _VOID:
        return Safe(f"<{' '.join(parts)}>")
    return Safe(f"<{' '.join(parts)}>{h(content)}</{name}>")


def link(href: str, text: Any, **attrs: Any) -> Safe:
    """A link inside the report (``href`` is a path this package built)."""
    return el("a", text, href=href, **attrs)


def ext_link(url: str, text: Any | None = None) -> Safe:
    """A link to ``url`` when it is http(s); anything else (``javascript:``, ``file:``) stays plain text."""
    label = url if text is None else text
    if url.lower().startswith(("http://", "https://")):
        return el("a", label, href=url, rel="noopener noreferrer nofollow", target="_blank")
    return h(label)


def page(title: str, body: Any, *, up: str = "", active: str = "", has_run: bool = False) -> str:
    """A whole page; ``up`` is the relative prefix back to the report root (``""`` or ``"../"``)."""
    items = []
    for href, label in NAV:
        if href == "run.html" and not has_run:
            continue
        items.append(link(up + href, label, class_="on" if href == active else None))
    return _LAYOUT.substitute(csp=CSP, title=h(title), up=up, nav=join(items, " "), body=h(body))


def number(n: Any) -> Safe:
    return h(f"{n:,}" if isinstance(n, int) else ("" if n is None else n))


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, id_: str | None = None, sortable: bool = False
) -> Safe:
    """A table; int/float cells are right-aligned and carry ``data-v`` for sorting."""
    head = join(el("th", c, scope="col") for c in headers)
    body = []
    for row in rows:
        cells = []
        for c in row:
            if isinstance(c, bool) or not isinstance(c, (int, float)):
                cells.append(el("td", c))
            else:
                cells.append(el("td", number(c), class_="n", data_v=c))
        body.append(el("tr", join(cells)))
    cls = "sortable" if sortable else None
    return el("table", Safe(f"<thead><tr>{head}</tr></thead><tbody>{join(body)}</tbody>"), id=id_, class_=cls)


def kv_table(pairs: Iterable[tuple[str, Any]], id_: str | None = None) -> Safe:
    """Label/value rows; a label indented by two spaces is shown as a sub-row of the one above."""
    rows = join(
        el(
            "tr",
            el("th", k.strip(), scope="row", class_="sub" if k.startswith("  ") else None)
            + el("td", number(v)),
        )
        for k, v in pairs
    )
    return el("table", el("tbody", rows), id=id_)


def section(title: str, *content: Any, id_: str | None = None) -> Safe:
    return el("section", el("h2", title) + join(content), id=id_)


HOVER = ("class", "source", "post id", "rating", "split", "distance", "reason")
"""What the hover title shows; the click panel shows everything (tags, URLs, file...)."""


def tile(
    style: str, info: dict[str, Any], caption: Any = "", *, mark: str = "", id_: str | None = None
) -> Safe:
    """One thumbnail of a sprite sheet; hover shows a short provenance, click/Enter (or ``page#id``) opens
    all of it in the side panel. Written as one f-string: a page may hold hundreds of tiles, 80k in all."""
    shown = {k: v for k, v in info.items() if v not in (None, "", -1)}
    title = "\n".join(f"{k}: {str(shown[k])[:120]}" for k in HOVER if k in shown)
    data = json.dumps(shown, ensure_ascii=False, default=str)
    anchor = f' id="{h(id_)}"' if id_ else ""
    return Safe(
        f'<figure class="{h(f"t {mark}".strip())}"{anchor} tabindex="0" title="{h(title)}" data-p="{h(data)}">'
        f'<span class="im" style="{h(style)}"></span><figcaption>{h(caption)}</figcaption></figure>'
    )


def pager(base: str, page_no: int, pages: int) -> Safe:
    """Links to the other pages of a paginated listing (``base``: name without ``.html``)."""
    if pages <= 1:
        return Safe("")
    links = []
    for n in range(1, pages + 1):
        if n == page_no:
            links.append(el("span", n, class_="on"))
        elif n in (1, pages) or abs(n - page_no) <= 3:
            links.append(link(page_name(base, n), n))
        elif abs(n - page_no) == 4:
            links.append(h("…"))
    return el("nav", join(links, " "), class_="pager", aria_label="pages")


def page_name(base: str, n: int) -> str:
    """``base.html`` for page 1, ``base-p2.html`` for page 2, ..."""
    return f"{base}.html" if n == 1 else f"{base}-p{n}.html"
