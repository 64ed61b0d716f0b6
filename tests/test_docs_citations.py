"""Nothing a reader sees cites a file the reader does not have.

The customer's documents (the HTTP contract, the test plan, the two protocol
references) are not published with the project: the documentation says what they
say (the contract page, the protocol guides). This test scans what readers see for
citations of those files, and for two rendering faults:

* the documentation sources (``docs/``, the README and the changelog it includes),
  and the string literals of the docs extensions, which generate pages;
* the docstrings (and ``#:`` attribute comments) of every public object of bkvcodec
  and of every module of the reference server, which autodoc renders;
* every ``--help`` of ``python -m bkvcodec`` and ``python -m reference_server``, their
  subcommands derived from the parsers and the server's dispatch;
* the OpenAPI document the server serves (and the docs render);
* the signatures autodoc renders: no ``TypeAliasForwardRef(...)``;
* markup that renders literally or as a citation: single backticks (reStructuredText
  "interpreted text", a Markdown habit) and inline literals glued to the text before
  them.

Code comments may cite the customer's files; a reader of the source can ask for them.
``.ci/run`` also checks the built HTML with ``docs/check_html.py``.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import pkgutil
import re
import sys
import tokenize
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS))

from check_html import CITATION  # noqa: E402

#: reStructuredText interpreted text without a role (renders as <cite> or literally).
INTERPRETED = re.compile(r"(?<![`:\w\\])`(?!`)([^`\n]+)`(?![`_\w])")
#: An inline literal glued to the word or dot before it (``X.``y```), or inside
#: strong emphasis (``**``x``**``): both render with their backticks.
GLUED_LITERAL = re.compile(r"[\w.)]``\w|\*\*``")


def _problems(text: str, *, markup: bool) -> list[str]:
    found = [m.group(0) for m in CITATION.finditer(text)]
    if markup:
        found += [m.group(0) for m in INTERPRETED.finditer(text)]
        found += [m.group(0) for m in GLUED_LITERAL.finditer(text)]
    return found


def _context(text: str, needle: str) -> str:
    at = text.find(needle)
    return text[max(0, at - 60):at + len(needle) + 40].replace("\n", " ")


def _check(where: str, text: str | None, *, markup: bool = True) -> list[str]:
    if not text:
        return []
    return [f"{where}: {p!r} in …{_context(text, p)}…" for p in _problems(text, markup=markup)]


# --- documentation sources -------------------------------------------------------------------

def _doc_sources() -> list[Path]:
    return sorted([*DOCS.rglob("*.rst"), *DOCS.glob("*.md"), ROOT / "README.md",
                   ROOT / "CHANGELOG.md"])


def _strip_code_blocks_md(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def test_documentation_sources() -> None:
    bad: list[str] = []
    for path in _doc_sources():
        if "_build" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        # Markdown uses single backticks for code; only reStructuredText is checked
        # for interpreted text.
        bad += _check(str(path.relative_to(ROOT)),
                      _strip_code_blocks_md(text) if path.suffix == ".md" else text,
                      markup=path.suffix == ".rst")
    assert bad == []


def _string_literals(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as source:
        for token in tokenize.generate_tokens(source.readline):
            if token.type == tokenize.STRING:
                yield token.start[0], token.string


def test_the_docs_extensions_generate_no_citation() -> None:
    bad: list[str] = []
    for path in sorted([*DOCS.glob("_ext/*.py"), DOCS / "make_state_diagram.py", DOCS / "conf.py"]):
        for line, literal in _string_literals(path):
            bad += _check(f"{path.relative_to(ROOT)}:{line}", literal, markup=False)
    assert bad == []


# --- docstrings -------------------------------------------------------------------------------

def _modules(package: str) -> list[str]:
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        names.append(info.name)
    return names


def _members(obj: object) -> Iterator[tuple[str, object]]:
    for name, value in vars(obj).items():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            value = value.fget
        if inspect.isfunction(value) or inspect.isclass(value):
            yield name, value


def _docstrings_of(module_name: str, public: Callable[[str], bool]) -> Iterator[tuple[str, str]]:
    module = importlib.import_module(module_name)
    yield module_name, inspect.getdoc(module) or ""
    for name, value in _members(module):
        if not public(name) or getattr(value, "__module__", None) != module_name:
            continue
        yield f"{module_name}.{name}", value.__doc__ or ""
        if inspect.isclass(value):
            for member, attribute in _members(value):
                yield f"{module_name}.{name}.{member}", attribute.__doc__ or ""


def _attribute_comments(path: Path) -> Iterator[tuple[int, str]]:
    """The ``#:`` comments autodoc renders, on their own lines or after an attribute."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        at = line.find("#: ")
        if at >= 0 and (at == len(line) - len(line.lstrip()) or "  #: " in line):
            yield number, line[at + 2:]


def test_library_docstrings() -> None:
    bad: list[str] = []
    seen: set[int] = set()
    for module_name in ("bkvcodec", "bkvcodec.bkv", "bkvcodec.ap3000", "bkvcodec.errors",
                        "bkvcodec.testing"):
        module = importlib.import_module(module_name)
        bad += _check(module_name, inspect.getdoc(module))
        for name in module.__all__:
            value = getattr(module, name)
            if id(value) in seen:
                continue
            seen.add(id(value))
            bad += _check(f"{module_name}.{name}", getattr(value, "__doc__", None)
                          if inspect.isclass(value) or callable(value) else None)
            if inspect.isclass(value):
                for member, attribute in _members(value):
                    if not member.startswith("_") or member == "__init__":
                        bad += _check(f"{module_name}.{name}.{member}", attribute.__doc__)
    for path in sorted((ROOT / "bkvcodec").rglob("*.py")):
        for number, comment in _attribute_comments(path):
            bad += _check(f"{path.relative_to(ROOT)}:{number}", comment)
    assert bad == []


def test_reference_server_docstrings() -> None:
    bad: list[str] = []
    for module_name in _modules("reference_server"):
        for where, doc in _docstrings_of(module_name, lambda name: True):
            bad += _check(where, doc)
    for path in sorted((ROOT / "reference_server").rglob("*.py")):
        for number, comment in _attribute_comments(path):
            bad += _check(f"{path.relative_to(ROOT)}:{number}", comment)
    assert bad == []


# --- command-line help -----------------------------------------------------------------------

def _help(main: Callable[[list[str]], object], argv: list[str]) -> str:
    """What ``main(argv)`` prints; argparse exits, a dispatcher may return instead."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exit_:
            status = exit_.code
    assert status in (0, None), (argv, status)
    return out.getvalue() + err.getvalue()


def _subcommands(help_text: str) -> list[str]:
    """The choices of the first ``{a,b,c}`` of an argparse usage line."""
    match = re.search(r"\{([\w,-]+)\}", help_text)
    return match.group(1).split(",") if match else []


def _help_texts() -> Iterator[tuple[str, str]]:
    from bkvcodec._cli import main as bkvcodec_main
    from reference_server.__main__ import main as server_main

    top = _help(bkvcodec_main, ["--help"])
    yield "python -m bkvcodec --help", top
    for sub in _subcommands(top):
        yield f"python -m bkvcodec {sub} --help", _help(bkvcodec_main, [sub, "--help"])
    yield "python -m reference_server --help", _help(server_main, ["--help"])
    from reference_server.__main__ import COMMANDS

    subcommands = list(COMMANDS)
    assert {"simulate", "testplan", "monitor", "batch"} <= set(subcommands)
    for sub in subcommands:
        text = _help(server_main, [sub, "--help"])
        yield f"python -m reference_server {sub} --help", text
        for nested in _subcommands(text):
            yield (f"python -m reference_server {sub} {nested} --help",
                   _help(server_main, [sub, nested, "--help"]))


def test_command_line_help() -> None:
    bad: list[str] = []
    count = 0
    for command, text in _help_texts():
        count += 1
        assert "usage:" in text, command
        bad += _check(command, text, markup=False)
    assert count >= 6
    assert bad == []


# --- the OpenAPI document and rendered signatures ---------------------------------------------

def test_openapi_document() -> None:
    from reference_server.api import openapi_document

    text = json.dumps(openapi_document(), ensure_ascii=False)

    assert _problems(text, markup=False) == []


def _signature_subjects() -> Iterator[tuple[str, object]]:
    seen: set[int] = set()
    for module_name in ("bkvcodec", "bkvcodec.bkv", "bkvcodec.ap3000", "bkvcodec.errors",
                        "bkvcodec.testing"):
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            if id(value) in seen or not callable(value):
                continue
            seen.add(id(value))
            yield f"{module_name}.{name}", value
            if inspect.isclass(value):
                for member, attribute in _members(value):
                    if not member.startswith("_") and inspect.isfunction(attribute):
                        yield f"{module_name}.{name}.{member}", attribute


def test_rendered_signatures_show_type_alias_names() -> None:
    sphinx_inspect = pytest.importorskip("sphinx.util.inspect")
    import conf  # docs/conf.py: its autodoc_type_aliases and the signature fix

    bad = []
    for where, subject in _signature_subjects():
        try:
            signature = sphinx_inspect.signature(subject, type_aliases=conf.autodoc_type_aliases)
        except (TypeError, ValueError):
            continue
        text = sphinx_inspect.stringify_signature(signature)
        args, _, returns = text.partition(" -> ")
        fixed = conf._unwrap_aliases(None, "function", where, subject, None, args,
                                     returns or None)
        if any("TypeAliasForwardRef" in (part or "") for part in fixed):
            bad.append(f"{where}{fixed}")
    assert bad == []
