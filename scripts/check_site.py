"""Check every page of the built docs site in headless Chromium, and screenshot it.

Run by ``nox -s docs`` after ``mkdocs build``::

    python scripts/check_site.py --site site --docs docs --shots site-shots

Each page is served from 127.0.0.1 and loaded twice in Debian's ``chromium``: once
with ``--dump-dom`` and a small script that measures the laid-out page, once for a
full-height screenshot into ``site-shots/<page>.png``.  A page fails when

* a table, code block or inline code is wider than the space it is shown in (the
  reader sees it clipped or has to scroll sideways): ``scrollWidth > clientWidth``;
* an identifier in a table cell (``<code>`` without spaces or commas) is broken over two lines;
* an image is shown at less than 2/3 of its own width (its text gets too small);
* a numbered step of the Markdown source is not the item of that number on the
  page (a code block that is not indented under its item ends the list: the next
  step is a paragraph, or a new list starting again at 1).

The exit status is 1 when a page fails, with one line per problem.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import html
import http.server
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

#: The width the pages are checked and shown at: a laptop screen, both sidebars shown.
WIDTH = 1280
#: The tallest screenshot taken (a longer page is cut there).
MAX_HEIGHT = 16000
#: A browser that does not answer in this many seconds fails the page.
TIMEOUT = 90

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
]

#: Measures the laid-out page; the result goes into an attribute that --dump-dom prints.
MEASURE = """
<script>
window.addEventListener("load", () => {
  const article = document.querySelector("article") || document.body;
  const said = (el) => (el.textContent || "").replace(/\\s+/g, " ").trim().slice(0, 70);
  const wide = [];
  const boxes = ".md-typeset__scrollwrap, pre, pre > code, table, p code, li code";
  for (const el of article.querySelectorAll(boxes)) {
    if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).display !== "inline") {
      const tag = el.tagName.toLowerCase();
      wide.push({tag, scroll: el.scrollWidth, client: el.clientWidth, text: said(el)});
    }
  }
  const broken = [];
  for (const el of article.querySelectorAll("td code, th code")) {
    // One word (no space to wrap at) on two lines: an identifier cut in the middle.
    if (!/[\\s,]/.test(el.textContent.trim()) && el.getClientRects().length > 1) broken.push(said(el));
  }
  const small = [];
  for (const img of article.querySelectorAll("img")) {
    if (img.naturalWidth && img.clientWidth < img.naturalWidth * 2 / 3) {
      small.push({src: img.getAttribute("src"), shown: img.clientWidth, natural: img.naturalWidth});
    }
  }
  const lists = [];
  for (const ol of article.querySelectorAll("ol")) {
    if (ol.closest("nav, .md-nav, .footnote")) continue;
    const items = [...ol.children].filter((li) => li.tagName === "LI").map((li) => {
      const first = li.firstChild && li.firstChild.nodeType === 1 && li.firstChild.tagName === "P"
        ? li.firstChild : li;
      return said(first);
    });
    lists.push({start: ol.start || 1, items});
  }
  const paragraphs = [...article.querySelectorAll("p")].map(said);
  document.documentElement.setAttribute("data-site-check", JSON.stringify({
    wide, broken, small, lists, paragraphs, height: document.documentElement.scrollHeight,
  }));
});
</script>
"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the site, with the measuring script in every page asked for with ?check."""

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if query != "check":
            super().do_GET()
            return
        file = Path(self.translate_path(path))
        if file.is_dir():
            file = file / "index.html"
        body = file.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _plain(markdown: str) -> str:
    """Markdown inline text as the page shows it: links, code and emphasis marks gone."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    text = text.replace("`", "").replace("**", "").replace("*", "")
    return html.unescape(re.sub(r"\s+", " ", text).strip())


def numbered_steps(source: str) -> list[tuple[int, str]]:
    """The top-level numbered items of a Markdown page (outside code blocks): (number, text)."""
    steps: list[tuple[int, str]] = []
    fence = False
    for line in source.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        match = None if fence else re.match(r"(\d+)\. +(\S.*)", line)
        if match:
            steps.append((int(match.group(1)), _plain(match.group(2))))
    return steps


def list_problems(steps: list[tuple[int, str]], lists: list[dict[str, object]]) -> list[str]:
    """Each numbered step of the source that is not shown as the item of that number."""
    shown: list[tuple[int, str]] = []
    for ol in lists:
        start = int(str(ol["start"]))
        items = ol["items"]
        assert isinstance(items, list)
        shown += [(start + i, str(text)) for i, text in enumerate(items)]
    problems = []
    for number, text in steps:
        key = text[:30]
        matches = [n for n, item in shown if item.startswith(key)]
        if not matches:
            problems.append(f"step {number} ({text[:40]!r}) is not a list item on the page")
        elif number not in matches:
            problems.append(f"step {number} ({text[:40]!r}) is numbered {matches[0]} on the page")
    return problems


def _browser(binary: str, url: str, *extra: str) -> str:
    with tempfile.TemporaryDirectory(prefix="site-check-") as profile:
        done = subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *extra, url],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def check_page(binary: str, base: str, page: str, source: Path | None, shot: Path) -> list[str]:
    """The problems of one page (and its screenshot, taken at the page's full height)."""
    dom = _browser(binary, f"{base}/{page}?check", "--dump-dom", "--virtual-time-budget=10000",
                   f"--window-size={WIDTH},1000")  # fmt: skip
    found = re.search(r'data-site-check="([^"]*)"', dom)
    if found is None:
        return ["the page's measuring script did not run"]
    report = json.loads(html.unescape(found.group(1)))
    problems = [
        f"{w['tag']} is {w['scroll']}px wide in a {w['client']}px column: {w['text']!r}"
        for w in report["wide"]
    ]
    problems += [f"identifier broken over two lines in a table: {text!r}" for text in report["broken"]]
    problems += [
        f"image {s['src']} shown at {s['shown']}px of its {s['natural']}px: its text is too small"
        for s in report["small"]
    ]
    if source is not None:
        problems += list_problems(numbered_steps(source.read_text(encoding="utf-8")), report["lists"])
    height = min(MAX_HEIGHT, max(800, int(report["height"])))
    shot.parent.mkdir(parents=True, exist_ok=True)
    _browser(binary, f"{base}/{page}", f"--screenshot={shot}", f"--window-size={WIDTH},{height}",
             "--virtual-time-budget=5000")  # fmt: skip
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--site", type=Path, default=Path("site"))
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    parser.add_argument("--shots", type=Path, default=Path("site-shots"))
    parser.add_argument("--browser", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--jobs", type=int, default=2, help="pages checked at the same time (default 2)")
    parser.add_argument("pages", nargs="*", help="only these pages (paths under the site)")
    args = parser.parse_args()
    handler = functools.partial(_Handler, directory=str(args.site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    pages = args.pages or sorted(
        str(p.relative_to(args.site)) for p in args.site.rglob("index.html") if "assets" not in p.parts
    )
    shutil.rmtree(args.shots, ignore_errors=True)

    def check(page: str) -> tuple[Path, list[str]]:
        folder = str(Path(page).parent)
        source = args.docs / ("index.md" if folder == "." else f"{folder}.md")
        name = "index" if folder == "." else folder.replace("/", "-")
        shot = args.shots / f"{name}.png"
        return shot, check_page(args.browser, base, page, source if source.exists() else None, shot)

    failed = 0
    try:
        # Two browsers at a time: each page's own two runs stay in order, and the report
        # keeps the pages' order.  (CI has two cores; one Chromium at a time left one idle.)
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for page, (shot, problems) in zip(pages, pool.map(check, pages)):
                print(f"{'FAIL' if problems else 'ok  '} {page} -> {shot}")
                for problem in problems:
                    print(f"     {problem}")
                failed += bool(problems)
    finally:
        server.shutdown()
    print(
        f"{len(pages)} pages checked in Chromium at {WIDTH}px, {failed} with problems; "
        f"screenshots in {args.shots}/"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
