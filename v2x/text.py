"""Text from the wire or from files, made safe for a terminal, a log and an XML report.

Ids, warning figures, notes, expectation names and topic names reach the command's output from outside
stacks, forgers on an open broker, scenario files and golden records. Shown as they are, an escape sequence
redraws the terminal (an attack review made a failed run read ``PASS`` with every line ``ok``), a newline
forges a log or summary line, and a control character makes the JUnit file one that no XML parser reads
(CI then reports a broken file instead of the run). Every such character is shown as its Python escape
(``\\x1b``, ``\\n``, ``\\u202e``), so the text stays readable and nothing is lost.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET

# C0 and C1 controls, DEL, and the zero-width and bidirectional formatting characters (which reorder or hide
# what a terminal shows)
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
# what XML 1.0 cannot hold (and C1 controls, DEL and the formatting characters above), but tab, newline and CR
_NOT_XML = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape", "backslashreplace").decode("ascii")


def printable(text: str) -> str:
    """``text`` as one line for a terminal or a log: every control or formatting character escaped."""
    return _UNPRINTABLE.sub(_escape, text)


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
