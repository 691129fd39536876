"""mkdocs hook: code in a table cell breaks only at its spaces and after its commas.

Browsers break inline code at hyphens, dots and slashes, and Material lets it
break anywhere, which cut ``EVENTLOG_DJANGO_USER_FIELD`` and ``X-Request-ID`` in
two.  Each space-separated word of such code is put in a ``nobreak`` span (see
docs/stylesheets/extra.css), with a break opportunity after each comma so that a
long list still wraps; the text, and what a reader copies, is unchanged.
"""

from __future__ import annotations

import re
from typing import Any

_TABLE = re.compile(r"<table>.*?</table>", re.S)
_CODE = re.compile(r"<code>(.*?)</code>", re.S)


def _words(match: re.Match[str]) -> str:
    parts = re.split(r"(\s+)", match.group(1))
    out = []
    for part in parts:
        if not part or part.isspace():
            out.append(part)
            continue
        pieces = part.split(",")
        joined = ",<wbr>".join(f'<span class="nobreak">{p}</span>' if p else "" for p in pieces)
        out.append(joined)
    return "<code>" + "".join(out) + "</code>"


def nobreak(html: str) -> str:
    """``html`` with the code inside its tables broken only at spaces and commas."""
    return _TABLE.sub(lambda table: _CODE.sub(_words, table.group(0)), html)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """mkdocs event: every page's tables."""
    return nobreak(html)
