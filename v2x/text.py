"""Text from the wire or from files, made safe for a terminal, a log and an XML report.

Ids, warning figures, notes, expectation names and topic names reach the command's output from outside
stacks, forgers on an open broker, scenario files and golden records. Shown as they are, an escape sequence
redraws the terminal (an attack review made a failed run read ``PASS`` with every line ``ok``), a newline
forges a log or summary line, and a control character makes the JUnit file one that no XML parser reads
(CI then reports a broken file instead of the run). Every such character is shown as its Python escape
(``\\x1b``, ``\\n``, ``\\u202e``), so the text stays readable and nothing is lost.
"""

from __future__ import annotations

import difflib
import logging
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable

# Controls (C0, C1, DEL: Cc), format characters (Cf: zero-width, bidirectional marks and overrides, which
# reorder or hide what a terminal shows), the line and paragraph separators (Zl, Zp: a new line to some tools)
# and lone surrogates (Cs), of the basic plane (read from unicodedata once, at import)
_UNSAFE = [c for c in map(chr, range(0x10000)) if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")]
# the format characters beyond it (the tags, the musical symbols' format marks, ...)
_ASTRAL = "\\U000110bd\\U000110cd\\U0001d173-\\U0001d17a\\U000e0001\\U000e0020-\\U000e007f"


def _class(chars: list[str], extra: str = "") -> str:
    """A regex character class of ``chars`` (as ranges), the astral format characters and ``extra``."""
    ranges: list[list[int]] = []
    for c in chars:
        if ranges and ranges[-1][1] == ord(c) - 1:
            ranges[-1][1] = ord(c)
        else:
            ranges.append([ord(c), ord(c)])
    body = "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges)
    return f"[{body}{_ASTRAL}{extra}]"


_UNPRINTABLE = re.compile(_class(_UNSAFE))
# what XML 1.0 cannot hold and the characters above, but tab, newline and CR
_NOT_XML = re.compile(_class([c for c in _UNSAFE if c not in "\t\n\r"], extra="\\ufffe\\uffff"))


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape", "backslashreplace").decode("ascii")


def printable(text: str) -> str:
    """``text`` as one line for a terminal or a log: every control or formatting character escaped."""
    return _UNPRINTABLE.sub(_escape, text)


def did_you_mean(got: str, options: Iterable[str], cutoff: float = 0.6) -> str:
    """ ": did you mean 'x'?" for the option closest to ``got`` (a typo), else "" (the scenario loader's, the
    SDK's and the world's hints)."""
    close = difflib.get_close_matches(got, sorted(options), n=1, cutoff=cutoff)
    return f": did you mean {close[0]!r}?" if close else ""


def xml_text(text: str) -> str:
    """``text`` as XML 1.0 can hold it (tab, newline and CR kept; any other control character escaped)."""
    return _NOT_XML.sub(_escape, text)


class _PrintableRecord(logging.LogRecord):
    def getMessage(self) -> str:
        return printable(super().getMessage())


def escape_log_messages() -> None:
    """Every log message from now on is :func:`printable` (the command line installs it once)."""
    logging.setLogRecordFactory(_PrintableRecord)


def xml_safe(root: ET.Element) -> ET.Element:
    """``root`` with every text and attribute value passed through :func:`xml_text`, in place."""
    for el in root.iter():
        if el.text:
            el.text = xml_text(el.text)
        if el.tail:
            el.tail = xml_text(el.tail)
        for key, value in el.attrib.items():
            el.set(key, xml_text(value))
    return root
