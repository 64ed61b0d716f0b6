"""Check the built HTML documentation for what must not reach a reader.

``python docs/check_html.py DIR`` (``.ci/run`` runs it on the HTML it builds) fails
when a page:

* cites a file the reader does not have (the customer's ``api.md``, ``test-plan.md``,
  ``bkv.md``, ``ap3000.md``, ``shared/…``, or a ``§`` section of them);
* shows ``TypeAliasForwardRef(...)`` in a signature;
* shows a stray backtick in its text, or a ``<cite>`` made from single backticks (a
  Markdown habit that reStructuredText renders as interpreted text);
* shows an unresolved ``$ref`` of the OpenAPI document.

``tests/test_docs_citations.py`` checks the sources for the same faults.
"""
from __future__ import annotations

import html
import re
import sys
from pathlib import Path

#: A citation of the customer's documents.
CITATION = re.compile(
    r"\b(?:api|bkv|ap3000|test-plan)\.md\b|\bshared/(?:spec|protocols|tools)\b|§\s?\d")

_SKIPPED = re.compile(r"<(script|style|pre)\b.*?</\1>|<div class=\"highlight.*?</div>",
                      re.S)
_TAG = re.compile(r"<[^>]+>")
_SIGNATURE = re.compile(r'<dt class="sig sig-object[^"]*"[^>]*>.*?</dt>', re.S)


def page_problems(page: str) -> list[str]:
    """What is wrong with one HTML page (code blocks are not checked for backticks)."""
    problems: list[str] = []
    body = _SKIPPED.sub("", page)
    text = html.unescape(_TAG.sub("", body))
    for match in CITATION.finditer(html.unescape(_TAG.sub("", page))):
        problems.append(f"citation {match.group(0)!r}")
    for signature in _SIGNATURE.findall(page):
        if "TypeAliasForwardRef" in signature:
            problems.append("TypeAliasForwardRef in a signature: "
                            + html.unescape(_TAG.sub("", signature))[:120])
    for match in re.finditer(r"`", text):
        around = text[max(0, match.start() - 40):match.end() + 40].replace("\n", " ")
        problems.append(f"stray backtick: …{around}…")
    if "<cite>" in body:
        problems.append("<cite> (single backticks in the source)")
    if "#/components/schemas/" in text:
        problems.append("unresolved OpenAPI $ref")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python docs/check_html.py HTML_DIR", file=sys.stderr)
        return 2
    failed = 0
    pages = sorted(Path(argv[0]).rglob("*.html"))
    for page in pages:
        if "_modules" in page.parts or page.name in ("genindex.html", "search.html"):
            continue
        for problem in page_problems(page.read_text(encoding="utf-8")):
            print(f"{page}: {problem}")
            failed += 1
    if not pages:
        print(f"no HTML pages under {argv[0]}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
