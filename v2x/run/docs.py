"""``v2x docs``: the project's documents, wherever the package is installed (a checkout has docs/; a wheel
carries a copy as v2x/_docs), so that hints such as "see 'v2x docs scenarios'" point to something the user has."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from v2x.argtypes import EXIT_BAD_INPUT, EXIT_OK

_CHECKOUT = Path(__file__).resolve().parents[2]
_CHECKOUT_DOCS = _CHECKOUT / "docs"
_PACKAGED_DOCS = Path(__file__).resolve().parents[1] / "_docs"
DOCS_DIR = _CHECKOUT_DOCS if _CHECKOUT_DOCS.is_dir() else _PACKAGED_DOCS
# The documents outside docs/ that the README lists, by name: in a checkout where they are; a wheel carries
# them in v2x/_docs as NAME.md (upper case), next to the docs (pyproject.toml's force-include).
EXTRA_DOCUMENTS = {"changelog": "CHANGELOG.md", "seeds": "seeds/README.md"}


def documents() -> dict[str, Path]:
    """Document name (lower case, no suffix: ``scenarios``; ``changelog`` and ``seeds`` too) -> path, by name."""
    found = {p.stem.lower(): p for p in DOCS_DIR.glob("*.md")}
    if DOCS_DIR == _CHECKOUT_DOCS:
        found.update({name: _CHECKOUT / rel for name, rel in EXTRA_DOCUMENTS.items() if (_CHECKOUT / rel).is_file()})
    return dict(sorted(found.items()))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    docs = sub.add_parser(
        "docs",
        help="list or print the documentation (scenario format, results, protocol, ...)",
        description="Without NAME: list the documents and where they are. With NAME (e.g. scenarios, results, "
        "protocol, architecture, changelog, seeds): print that document.",
        epilog="Exit codes: 0 done, 2 no such document.",
    )
    docs.add_argument("name", nargs="?", metavar="NAME", help="a document's name, e.g. scenarios")
    docs.set_defaults(handler=cmd_docs)


def cmd_docs(args: argparse.Namespace) -> int:
    found = documents()
    if args.name is None:
        if not found:
            print(f"v2x docs: no documents found in {DOCS_DIR}", file=sys.stderr)
            return EXIT_BAD_INPUT
        for name, path in found.items():
            title = next(
                (
                    line.lstrip("# ").strip()
                    for line in path.read_text(encoding="utf-8").splitlines()
                    if line.startswith("#")
                ),
                "",
            )
            print(f"{name:<14} {title}  ({path})")
        return EXIT_OK
    key = args.name.lower().removesuffix(".md")
    doc = found.get(key)
    if doc is None:
        print(f"v2x docs: no document {args.name!r}; there are: {', '.join(found)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sys.stdout.write(doc.read_text(encoding="utf-8"))
    return EXIT_OK
