"""Load and validate scenario files. Every problem names the file, the field path and what was expected."""

from __future__ import annotations

import difflib
import itertools
import math
import re
import typing
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pydantic
import yaml
from pydantic import ValidationError

from v2x.apps.registry import RunsOn, app_spec
from v2x.apps.thresholds import BOUNDS as THRESHOLD_BOUNDS
from v2x.apps.thresholds import DEFAULTS as THRESHOLD_DEFAULTS
from v2x.argtypes import ID_PATTERN, SCENARIO_MAX_ACTORS
from v2x.files import read_regular
from v2x.scenario.model import (
    ALL_VARIANTS,
    BACKGROUND_ID_PREFIX,
    BACKGROUND_PACKED_M,
    EMERGENCY_FLAG_ACTIONS,
    FLAG_ACTIONS,
    LANE_ACTIONS,
    MAX_BACKGROUND_VEHICLES,
    ROAD_USER_KINDS,
    VEHICLE_KINDS,
    ActorSpec,
    Expectation,
    GapExpectation,
    MaxDecelExpectation,
    MinGapExpectation,
    RoadEventSpec,
    RoadSignSpec,
    Scenario,
    StaysOnRouteExpectation,
)
from v2x.text import did_you_mean
from v2x.units import mps_to_kph, wrap_angle_rad

if TYPE_CHECKING:
    from v2x.scenario.geometry import Route

# A source checkout has scenarios/ at the top; an installed wheel carries a copy as v2x/_scenarios.
SIGN_MAX_OFFSET_M = 10.0  # a road sign stands beside its reference path: at most this far outside its half-width
_CHECKOUT_SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
_PACKAGED_SCENARIOS = Path(__file__).resolve().parents[1] / "_scenarios"
SCENARIO_DIR = _CHECKOUT_SCENARIOS if _CHECKOUT_SCENARIOS.is_dir() else _PACKAGED_SCENARIOS


class ScenarioError(Exception):
    """A scenario file is invalid. ``problems`` are (field path, what was expected) pairs. ``actor_ids``: the
    file's actor ids in order (None where an entry has no valid one): the message names the actor a path is
    in, ``actors[1] (car_a).speed_mps`` (``problems`` keep the bare path)."""

    def __init__(self, path: Path | str, problems: list[tuple[str, str]], actor_ids: Sequence[str | None] = ()) -> None:
        self.path = str(path)
        self.problems = problems
        named = [(_actor_named(loc, actor_ids), msg) for loc, msg in problems]
        lines = [f"{self.path}: {loc}: {msg}" if loc else f"{self.path}: {msg}" for loc, msg in named]
        super().__init__("\n".join(lines))


_ACTOR_AT = re.compile(r"actors\[(\d+)\]")


def _actor_named(loc: str, actor_ids: Sequence[str | None]) -> str:
    """``actors[1].speed_mps`` as ``actors[1] (car_a).speed_mps`` (with 10 actors, counting them to find the
    one meant was left to the reader: newcomer review 9)."""
    found = _ACTOR_AT.match(loc)
    if found is None or int(found[1]) >= len(actor_ids) or actor_ids[int(found[1])] is None:
        return loc
    return f"{found[0]} ({actor_ids[int(found[1])]}){loc[found.end() :]}"


def _node_actor_ids(node: yaml.Node | None) -> list[str | None]:
    """:func:`_actor_ids` of a document not yet built (its YAML nodes: a key given twice is found there)."""
    if not isinstance(node, yaml.MappingNode):
        return []
    actors = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == "actors"), None)
    if not isinstance(actors, yaml.SequenceNode):
        return []
    ids: list[str | None] = []
    for item in actors.value:
        found = None
        if isinstance(item, yaml.MappingNode):
            found = next((v.value for k, v in item.value if isinstance(k, yaml.ScalarNode) and k.value == "id"), None)
        ids.append(found if isinstance(found, str) and ID_PATTERN.fullmatch(found) else None)
    return ids


def _actor_ids(data: dict[str, Any]) -> list[str | None]:
    """The actor ids of a file's (unvalidated) document, for :class:`ScenarioError`'s messages: an id that is
    not one (not text of 1-64 letters, digits, '_', '.', '-') is None."""
    actors = data.get("actors")
    if not isinstance(actors, list):
        return []
    ids = [a.get("id") if isinstance(a, dict) else None for a in actors]
    return [i if isinstance(i, str) and ID_PATTERN.fullmatch(i) else None for i in ids]


# Limits on what a scenario file may hold, checked before anything is built from it: a file is at most
# MAX_FILE_BYTES, nests at most MAX_DEPTH levels, and expands (YAML aliases counted as copies, which is
# what validating them costs) to at most MAX_NODES values. A "billion laughs" alias bomb, a 100k-deep
# nesting or a 1 GB file is refused with exit 2 instead of eating memory or the stack.
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 200_000


class _LimitExceeded(Exception):
    pass


class _SafeRules(yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """PyYAML's safe constructor and resolver, with the scenario files' rules (registered below)."""

    # (its own copy, to change below: PyYAML's lists are shared by every loader, yaml.safe_load's too)
    yaml_implicit_resolvers = {  # noqa: RUF012 (as PyYAML declares it)
        first: list(rules) for first, rules in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }


class _Bounded(yaml.composer.Composer):
    """PyYAML's composer, with bounds on the nesting depth of what it composes and on the number of nodes
    (each written value, key and collection once; an alias adds none here: ``_expanded_size`` counts its
    copies after). The node bound stops composing at the first node over MAX_NODES: a 4 MiB file of 2 million
    values took 70-125 s and 1.7 GB to compose before its size was checked (attack review 3)."""

    _depth = 0
    composed = 0  # nodes composed so far

    if TYPE_CHECKING:  # (the parser's, which each loader below is made of too)

        def peek_event(self) -> Any: ...
        def check_event(self, *choices: Any) -> bool: ...

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _LimitExceeded(
                    f"line {mark.line + 1}, column {mark.column + 1}",
                    f"nested deeper than {MAX_DEPTH} levels",
                )
            if not self.check_event(yaml.AliasEvent):
                self.composed += 1
                if self.composed > MAX_NODES:
                    mark = self.peek_event().start_mark
                    raise _LimitExceeded(
                        f"line {mark.line + 1}, column {mark.column + 1}",
                        f"at most {MAX_NODES} values once YAML aliases are expanded",
                    )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _PurePythonLoader(_Bounded, yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, _SafeRules):
    """The loader on PyYAML's own reader, scanner and parser (``yaml.SafeLoader``'s)."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _SafeRules.__init__(self)


_LimitedLoader: type[_PurePythonLoader] = _PurePythonLoader
if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _LibyamlLoader(_Bounded, CParser, _SafeRules):
        """The loader on libyaml's scanner and parser, as PyYAML's wheels carry it: they read the same YAML
        some 7 times faster (the pure-Python ones took 7 s for the 200,000 values a file may have, on a loaded
        machine). The composer, the resolver and the constructor stay PyYAML's Python ones, so that the bounds
        and the rules below apply to both; what the two parsers read differently is refused before either reads
        it (``_parser_dependent``, ``_lone_surrogate``)."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            _SafeRules.__init__(self)

    _LimitedLoader = _LibyamlLoader  # type: ignore[assignment]


MAX_INT_BITS = 1024  # an integer in a scenario file is below 2**1024 (about 1.8e308, the largest float) in size


class _Unrepresentable(yaml.constructor.ConstructorError):
    """A scalar that is valid YAML but names no value Python can hold (an impossible date, a huge integer)."""

    def __init__(self, *args: Any, node: yaml.Node) -> None:
        super().__init__(*args)
        self.node = node


def _nodes(root: yaml.Node, *, keys: bool = False) -> Iterator[tuple[yaml.Node, list[Any]]]:
    """Every node of the document ``root`` with its field path (as problems name fields), each once (a node an
    alias repeats is looked at once); ``keys``: a mapping's keys too (path: the value's, then "(the key)")."""
    stack: list[tuple[yaml.Node, list[Any]]] = [(root, [])]
    seen: set[int] = set()
    while stack:
        node, where = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node, where
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, [*where, k]) for k, child in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else "?"
                stack.append((value, [*where, name]))
                if keys:
                    stack.append((key, [*where, name, "(the key)"]))


def _path_to(root: yaml.Node, target: yaml.Node) -> str:
    """The field path of ``target`` in the document ``root``, or "" if not found."""
    return next((_loc(where) for node, where in _nodes(root, keys=True) if node is target), "")


def _constructed_or_refused(construct: Any, what: str, *, ascii_only: bool = False) -> Any:
    """PyYAML's constructor ``construct`` for a scalar, with whatever it raises for a value Python cannot hold
    (``2026-02-30``; an integer of more than 4300 digits, Python's limit on converting text) or cannot read at
    all (an explicit ``!!int ""``, ``!!int "+"``, ``!!float "_"``: IndexError; ``!!timestamp ""``:
    AttributeError; ``!!bool ""``: KeyError, each a traceback before: attack review 11) turned into a YAML error
    at the value's line, which the loader reports as a problem (exit 2). ``ascii_only``: a value with other
    characters than ASCII is refused too (``!!float "１３０"``: Python's float() reads full-width digits)."""

    def constructor(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if ascii_only and isinstance(node.value, str) and not node.value.isascii():
            message = f"{what}; {_short(node.value, 40)} is not (only ASCII digits are)"
            raise _Unrepresentable(None, None, message, node.start_mark, node=node)
        try:
            value = construct(loader, node)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # (any failure of a constructor: a value it cannot read)
            why = str(exc).split(";")[0].split(":")[0]
            detail = f" ({why})" if isinstance(exc, (ValueError, OverflowError)) and why else ""
            message = f"{what}; {_short(node.value, 40)} is not{detail}"
            raise _Unrepresentable(None, None, message, node.start_mark, node=node) from None
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:  # (0x and 1:2:3 forms have no digit limit)
            raise _Unrepresentable(None, None, f"{what}; {_short(node.value, 40)} is not", node.start_mark, node=node)
        return value

    return constructor


_SafeRules.add_constructor(
    "tag:yaml.org,2002:timestamp",
    _constructed_or_refused(yaml.SafeLoader.construct_yaml_timestamp, "a real date (and time)"),
)
# Integers as YAML 1.2's core schema writes them: decimal, 0o octal, 0x hexadecimal (and, as before, a sign). PyYAML
# reads YAML 1.1, where `0130` is octal (88), `2:10` base 60 (130), `0b10000010` binary (130) and `1_4` is 14: each
# is refused, naming the field, rather than read silently as another number than YAML 1.2 (and the reader) takes
# it for (attack review 10: `start_m: 0130` put a car at 88 m). A decimal with a leading zero is such a form.
_YAML12_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*|0o[0-7]+|0x[0-9a-fA-F]+)\Z")  # (\Z: "12\n" is not)
_INT_RULE = "an integer as YAML 1.2 writes it (decimal without a leading zero, 0o17 octal or 0x1F hexadecimal)"


def _yaml12_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if not _YAML12_INT.match(text):
        try:
            value = yaml.SafeLoader.construct_yaml_int(loader, node)
            old = f" (YAML 1.1 reads it as {value})" if value.bit_length() <= 64 else ""
        except Exception:  # (`!!int ""` and `!!int "+"`: IndexError in PyYAML)
            old = ""
        message = f"{_INT_RULE}; {_short(text, 40)} is not{old}"
        raise _Unrepresentable(None, None, message, node.start_mark, node=node)
    sign, body = (-1, text[1:]) if text[0] == "-" else (1, text.lstrip("+"))
    base = {"0o": 8, "0x": 16}.get(body[:2], 10)
    return sign * int(body[2:] if base != 10 else body, base)


_SafeRules.add_constructor(
    "tag:yaml.org,2002:int",
    _constructed_or_refused(_yaml12_int, "an integer a number field can hold (within +-1e308)"),
)
# Reals as YAML 1.2's core schema writes them: decimal digits with an optional dot and exponent (`130.5`, `1e3`,
# `-.5`), `.inf` and `.nan` (which the schema's fields refuse: not finite). YAML 1.1's other forms, base 60
# (`2:10.5`, 130.5) and underscores (`1_00.5`), are text, as in YAML 1.2, which a number field refuses naming the
# number YAML 1.1 would have made of them (a loaded car was at 130.5 m without a word: diff review 25).
_YAML12_FLOAT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")
_YAML12_FLOAT_OR_INF = re.compile(rf"(?:{_YAML12_FLOAT.pattern}|[-+]?\.(?:inf|Inf|INF)\Z|\.(?:nan|NaN|NAN)\Z)")
_FLOAT_RULE = "a number as YAML 1.2 writes it (decimal digits with an optional dot and exponent: 130.5, 1.305e2)"
_YAML11_FLOAT = next(  # (PyYAML's own pattern, kept to name what YAML 1.1 makes of a value before it is removed)
    rx for tag, rx in yaml.SafeLoader.yaml_implicit_resolvers["1"] if tag == "tag:yaml.org,2002:float"
)


def _yaml11_reading(text: str) -> str:
    """ " (YAML 1.1 reads it as 130.5)" for text that YAML 1.1 (PyYAML) reads as a real, else ""."""
    value = yaml.safe_load(text) if _YAML11_FLOAT.match(text) else None  # (the whole scalar: nothing else to load)
    return f" (YAML 1.1 reads it as {value})" if isinstance(value, float) else ""


def _yaml12_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    value: float = yaml.SafeLoader.construct_yaml_float(loader, node)  # (raises for what no YAML reads as a number)
    text = str(loader.construct_scalar(node))
    if not _YAML12_FLOAT_OR_INF.match(text):  # (an explicit `!!float "2:10.5"` or `!!float "12\n"`)
        message = f"{_FLOAT_RULE}; {_short(text, 40)} is not (YAML 1.1 reads it as {value})"
        raise _Unrepresentable(None, None, message, node.start_mark, node=node)
    return value


_SafeRules.add_constructor(
    "tag:yaml.org,2002:float", _constructed_or_refused(_yaml12_float, "a number", ascii_only=True)
)
_SafeRules.add_constructor(
    "tag:yaml.org,2002:bool",
    _constructed_or_refused(yaml.SafeLoader.construct_yaml_bool, "true or false"),
)


# PyYAML reads YAML 1.1, where a plain `1e3` or `-.5` is a string (its floats need a dot and a signed
# exponent) and `2:10.5` or `1_00.5` a real; YAML 1.2 reads the first as numbers and the others as text, and so
# does the scenario loader: YAML 1.2's pattern in the place of PyYAML's. Quoted ("14") they stay strings, which a
# number field refuses. (Tried after the int pattern, as PyYAML's was not: `14` stays an int.)
for _first, _resolvers in _SafeRules.yaml_implicit_resolvers.items():
    _resolvers[:] = [(tag, rx) for tag, rx in _resolvers if tag != "tag:yaml.org,2002:float"]
_SafeRules.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT_OR_INF, list("-+.0123456789"))
# Booleans as YAML 1.2 has them, true and false only: in YAML 1.1 `yes`, `no`, `on` and `off` are booleans too
# (`country: NO` is false), which would let `attentive: yes` through a boolean field that takes only true/false.
# They stay text, which a boolean field refuses, naming the field.
for _first, _resolvers in _SafeRules.yaml_implicit_resolvers.items():
    _resolvers[:] = [(tag, rx) for tag, rx in _resolvers if tag != "tag:yaml.org,2002:bool"]
_SafeRules.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# The integers: YAML 1.1's forms as before (to be refused by ``_yaml12_int``, not read as text or as a float by
# the pattern above) and YAML 1.2's 0o octal, in the place of PyYAML's own pattern (tried before the floats').
_YAML11_OR_12_INT = re.compile(
    r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-9_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+"
    r"|[-+]?0o[0-7_]+)$"
)
for _first, _resolvers in _SafeRules.yaml_implicit_resolvers.items():
    _resolvers[:] = [(tag, _YAML11_OR_12_INT if tag == "tag:yaml.org,2002:int" else rx) for tag, rx in _resolvers]


def _duplicate_keys(root: yaml.Node) -> list[tuple[str, str]]:
    """Every key given twice in one mapping of the document (PyYAML keeps the last silently), by its field
    path, in the order of the file: ``(path, what)``. A merge key's (``<<: *base``) keys may be overridden:
    that is what merging is for. A node an alias repeats is looked at once."""
    found: list[tuple[int, int, str, str]] = []
    for node, where in _nodes(root):
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], yaml.Mark] = {}
            for key, _ in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                    continue
                name = key.value
                mark, again = first.setdefault((key.tag, key.value), key.start_mark), key.start_mark
                if mark is again:
                    continue
                lines = (
                    f"line {mark.line + 1} (columns {mark.column + 1} and {again.column + 1})"
                    if mark.line == again.line
                    else f"lines {mark.line + 1} and {again.line + 1}"
                )
                message = f"a key given once (YAML would silently keep the last); {name!r} is given again, on {lines}"
                found.append((again.line, again.column, _loc([*where, name]), message))
    return [(loc, message) for _, _, loc, message in sorted(found)]


class _Recursive(Exception):
    """A YAML node that contains itself through an alias (``a: &a [*a]``)."""


def _expanded_size(node: yaml.Node) -> int:
    """How many values ``node`` stands for once every alias is expanded (iterative, memoised per node).
    Raises ``_Recursive`` for a node that contains itself: it stands for infinitely many (depth first, a
    node met again before its own children are done is one of its own descendants)."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()  # nodes whose children are being counted
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, children_done = stack.pop()
        if id(current) in sizes:
            continue
        if not children_done:
            if id(current) in open_:
                raise _Recursive(current.start_mark)
            open_.add(id(current))
        if isinstance(current, yaml.SequenceNode):
            children = list(current.value)
        elif isinstance(current, yaml.MappingNode):
            children = [n for pair in current.value for n in pair]
        else:
            sizes[id(current)] = 1
            continue
        if children_done:
            sizes[id(current)] = min(1 + sum(sizes[id(c)] for c in children), MAX_NODES + 1)
        else:
            stack.append((current, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(node)]


def _line_column(text: str, position: int) -> str:
    """Where ``position`` of ``text`` is, as a problem's location: "line L, column C" (both from 1)."""
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"line {line}, column {column}"


def _unprintable(text: str, position: int) -> tuple[str, str]:
    """The problem for the character at ``position`` of ``text``, which YAML does not allow (a control character
    other than tab and line breaks, a NUL, a lone surrogate, U+FFFE or U+FFFF), at its line and column."""
    char = ord(text[position])
    return (
        _line_column(text, position),
        f"expected YAML text, which has no control characters but tab and line breaks (no NUL, no U+FFFE or"
        f" U+FFFF); got U+{char:04X}",
    )


# What PyYAML's two parsers (libyaml's and its own) read differently, so that one file loaded on one install and
# not on another (attack review 4): a tab (libyaml takes "a:<tab>1", PyYAML's own refuses it), a directive
# (PyYAML's own takes "%YAML 1.3" and unknown ones, libyaml refuses them), a byte order mark after the start
# (PyYAML's own makes it part of a key). Refused here for both, naming where; a scenario file needs none of them.
_PARSER_DEPENDENT = re.compile(r"\t|^%|\ufeff", re.MULTILINE)


def _parser_dependent(text: str) -> tuple[str, str] | None:
    """The first thing in ``text`` that PyYAML's two parsers read differently (``_PARSER_DEPENDENT``), as a
    problem at its line and column, or None."""
    found = _PARSER_DEPENDENT.search(text, 1 if text.startswith("\ufeff") else 0)  # (a BOM may begin the file)
    while found is not None and found.group() == "\t" and _in_comment(text, found.start()):
        found = _PARSER_DEPENDENT.search(text, found.start() + 1)  # (both read a comment's tab alike: a diff review)
    if found is None:
        return None
    what = {
        "\t": "spaces, not a tab (to indent or to separate; in a double-quoted string write \\t)",
        "%": "no YAML directive (%YAML, %TAG): a scenario file is one plain document",
        "\ufeff": "no byte order mark (U+FEFF) after the start of the file",
    }[found.group()]
    return _line_column(text, found.start()), f"expected {what}"


def _in_comment(text: str, position: int) -> bool:
    """Whether ``position`` in ``text`` is inside a comment: after a ``#`` that starts its line or follows a blank,
    outside quotes (a plain scalar may hold ``#`` without a blank before it; a quoted one, any)."""
    start = text.rfind("\n", 0, position) + 1
    quote = ""
    for k in range(start, position):
        ch = text[k]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (k == start or text[k - 1] in " \t"):
            return True
    return False


def _lone_surrogate(value: Any) -> str | None:
    """A string in ``value`` (a loaded document) with a lone surrogate, which only a "\\ud800"-style escape
    makes: PyYAML's own parser takes it, libyaml's refuses it."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= ch <= "\udfff" for ch in item):
                return item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _read_yaml(path: Path) -> Any:
    """The file's YAML document, or ScenarioError: unreadable, too large, not UTF-8, not YAML, or over the
    limits above."""
    try:
        raw = read_regular(path, MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(path, [("", f"cannot read the file: {exc.strerror or exc}")]) from exc
    if raw is None:  # (a FIFO given as the scenario file blocked v2x run for good: attack review 3)
        raise ScenarioError(path, [("", "a regular file; this is not one (a FIFO, a device or a socket)")])
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(path, [("", f"a scenario file of at most {MAX_FILE_BYTES // 1024 // 1024} MiB")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start : exc.start + 1].hex()
        raise ScenarioError(
            path, [(f"line {line}", f"expected UTF-8 text; byte 0x{bad} at offset {exc.start} is not valid UTF-8")]
        ) from None
    # A character YAML does not allow (a control character, the NUL of a truncated or binary file): PyYAML's
    # reader refused it as it was made, outside the try below, with a traceback; libyaml's as it reads on.
    # Looked for here, so that both say the same.
    unprintable = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if unprintable is not None:
        raise ScenarioError(path, [_unprintable(text, unprintable.start())])
    odd = _parser_dependent(text)
    if odd is not None:
        raise ScenarioError(path, [odd])
    loader = _LimitedLoader(text)
    node: yaml.Node | None = None
    try:
        node = loader.get_single_node()
        try:
            too_many = node is not None and _expanded_size(node) > MAX_NODES
        except _Recursive as exc:
            mark = exc.args[0]
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise ScenarioError(
                path, [(where, "no YAML alias inside the value it names (a value that contains itself)")]
            ) from None
        if too_many:
            raise ScenarioError(path, [("", f"at most {MAX_NODES} values once YAML aliases are expanded")])
        duplicates = _duplicate_keys(node) if node is not None else []
        if duplicates:
            raise ScenarioError(path, duplicates, _node_actor_ids(node))
        document = loader.construct_document(node) if node is not None else None
        if ("\\u" in text or "\\U" in text) and (lone := _lone_surrogate(document)) is not None:
            raise ScenarioError(
                path, [("", f"expected text without a lone surrogate escape (\\ud800-\\udfff); got {ascii(lone)[:80]}")]
            )
        return document
    except _LimitExceeded as exc:
        where, what = exc.args
        raise ScenarioError(path, [(where, what)]) from None
    except _Unrepresentable as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        field = _path_to(node, exc.node) if node is not None else ""
        where = f"{field} ({where})" if field and where else field or where
        raise ScenarioError(path, [(where, str(exc.problem))], _node_actor_ids(node)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", exc)
        if problem == "exceeded maximum nesting depth":  # (libyaml's scanner looks ahead, to its own limit of 1000)
            raise ScenarioError(path, [(where, f"nested deeper than {MAX_DEPTH} levels")]) from None
        raise ScenarioError(path, [(where, f"not valid YAML: {problem}")]) from None
    except (ValueError, OverflowError) as exc:  # (PyYAML's pure-Python reader on "\U00110000" or "\UFFFFFFFF":
        # chr() refuses them, where libyaml says "not valid YAML"; attack review 4)
        raise ScenarioError(path, [("", f"not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()


def _short(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (a problem message quotes what it got, not all of it)."""
    try:
        text = value.isoformat() if isinstance(value, datetime) else repr(value)
    except ValueError:  # an integer too long to write out (Python's 4300-digit limit)
        text = f"an integer of {value.bit_length()} bits" if isinstance(value, int) else type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_of(what: str, options: Iterable[str], got: str) -> str:
    """ "one of <what> [...]; got 'x'", with the closest option when there is one (a typo), and a long list
    not spelled out (the thresholds are over a hundred)."""
    opts = sorted(options)
    listed = str(opts) if len(opts) <= 20 else f"({len(opts)} of them: 'v2x docs scenarios' lists them)"
    return f"one of {what} {listed}; got {got!r}{did_you_mean(got, opts)}"


def _models_in(annotation: Any) -> list[type[pydantic.BaseModel]]:
    """The pydantic models a field's annotation can hold (through Optional, unions, lists, tuples, dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _models_at(loc: Sequence[Any]) -> list[type[pydantic.BaseModel]]:
    """The models of the scenario schema that can stand where ``loc`` (a problem's path, its last part the
    unknown field) points (a union's members all count)."""
    from v2x.scenario.model import Scenario

    models: list[type[pydantic.BaseModel]] = [Scenario]
    for part in loc[:-1]:
        if not isinstance(part, str):
            continue  # a list index or a mapping key: the models stay (the field's annotation held them)
        models = [
            m for model in models if part in model.model_fields for m in _models_in(model.model_fields[part].annotation)
        ]
    return models


def _fields_at(loc: Sequence[Any]) -> set[str]:
    """The field names the scenario schema allows where ``loc`` points (:func:`_models_at`)."""
    return {name for model in _models_at(loc) for name in model.model_fields}


def _unknown_hint(loc: Sequence[Any]) -> str:
    """For a field the schema does not have at ``loc``: the closest field here (a typo, ``sped_mps``:
    newcomer 5), else ": did you mean 'driver.reaction_s'?" when a field of that name belongs one level down
    (``reaction_s`` written beside ``driver``, not in it: newcomer review 9), else ''."""
    name = str(loc[-1])
    typo = did_you_mean(name, _fields_at(loc), 0.8)
    if typo:
        return typo
    homes = sorted(
        {
            f"{field}.{name}"
            for model in _models_at(loc)
            for field, info in model.model_fields.items()
            if typing.get_origin(info.annotation) not in (list, tuple, dict)  # (a mapping here, not a list of them)
            for sub in _models_in(info.annotation)
            if name in sub.model_fields
        }
    )
    return f": did you mean {' or '.join(repr(h) for h in homes)}?" if homes else ""


_PATTERN_ATOM = re.compile(r"\[([^\]]+)\](?:\{(\d+),(\d+)\})?")
_CLASS_WORDS = (("a-z", "lower-case letters"), ("A-Z", "upper-case letters"), ("0-9", "digits"))


def _char_class(spec: str) -> str:
    """A regular expression's character class (``A-Za-z0-9_.-``) in words."""
    words = []
    if "a-z" in spec and "A-Z" in spec:
        words.append("letters")
        spec = spec.replace("a-z", "").replace("A-Z", "")
    for part, word in _CLASS_WORDS:
        if part in spec:
            words.append(word)
            spec = spec.replace(part, "")
    words += [repr(ch) for ch in spec.replace("\\", "")]
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]


def pattern_words(pattern: str) -> str:
    """What a field's ``pattern`` (``^[a-z0-9][a-z0-9-]{0,63}$``) asks for, in words; the pattern itself if
    it is not of the forms the schema uses (character classes, each once or {m,n} times)."""
    body = pattern.removeprefix("^").removesuffix("$")
    atoms = []
    at = 0
    while at < len(body) and (m := _PATTERN_ATOM.match(body, at)) is not None:
        atoms.append((m[1], int(m[2] or 1), int(m[3] or 1)))
        at = m.end()
    if at != len(body) or not atoms or len(atoms) > 2 or any(lo != hi for _, lo, hi in atoms[:-1]):
        return f"text matching {pattern}"
    if len(atoms) == 1:
        chars, lo, hi = atoms[0]
        return f"{lo}-{hi} characters, each one of {_char_class(chars)}"
    (first, _, _), (rest, lo, hi) = atoms
    return f"{lo + 1}-{hi + 1} characters of {_char_class(rest)}, the first one of {_char_class(first)}"


def _loc(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


UNKNOWN_SCENARIO_FIELD = "unknown field (not in the schema; 'v2x docs scenarios' describes every field)"


def pydantic_problems(
    exc: ValidationError, *, unknown: str = UNKNOWN_SCENARIO_FIELD, drop_tags: Collection[str] | None = None
) -> list[tuple[str, str]]:
    """A pydantic validation error as (field path, what was expected) pairs, in a file's words: numbers
    without quotes, true or false, what was got (cut short). ``unknown`` is said of a field the schema does
    not have; ``drop_tags`` are the discriminator tags to drop from paths (default: the scenario schema's). Also
    used for other files the project reads (golden records, v2x.run.check)."""
    drop = _TAGS if drop_tags is None else drop_tags
    problems = []
    for err in exc.errors(include_url=False):
        # Drop the discriminator tag pydantic inserts into union paths (e.g. expectations[0].warning.app).
        # (only right after a list index, where pydantic puts it: a field named like a tag stays, as an
        # expectation's `metric` does; "expectations[4]: required field is missing" named none: a review)
        raw = err["loc"]
        loc = [
            p for k, p in enumerate(raw) if not (isinstance(p, str) and p in drop and k and isinstance(raw[k - 1], int))
        ]
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "union_tag_invalid":  # e.g. an expectation's type: the path names the tag's field
            ctx = err.get("ctx", {})
            tags = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip()]
            loc.append(str(ctx.get("discriminator", "type")).strip("'"))
            msg = _one_of("", tags, str(ctx.get("tag", ""))).replace("one of  ", "one of ")
        elif err["type"] == "value_error":  # a validator's own words, without pydantic's "Value error, "
            msg = msg.removeprefix("Value error, ")
            # (not a whole entry's dump after a message that says what it got: a newcomer review)
            if "input" in err and "; got " not in msg and not isinstance(err["input"], dict | list):
                msg = f"{msg}; got {_short(err['input'])}"
        elif err["type"] == "extra_forbidden":
            # (a typo's likely field, or a field one level down: from the whole schema's names)
            msg = unknown + (_unknown_hint(loc) if unknown is UNKNOWN_SCENARIO_FIELD and loc else "")
        elif err["type"] in ("too_short", "too_long") and isinstance(err.get("input"), list | tuple):
            # (pydantic's "List should have at least 2 items after validation, not 1": newcomer review 9)
            ctx = err.get("ctx", {})
            items = err["input"]
            noun = "points" if items and all(isinstance(x, list | tuple) for x in items) else "entries"
            bound = (
                f"at least {ctx.get('min_length')}"
                if err["type"] == "too_short"
                else f"at most {ctx.get('max_length')}"
            )
            msg = f"{bound} {noun}; got {len(items)}: {_short(items)}"
        elif err["type"] == "string_pattern_mismatch":  # (a regular expression, in words: newcomer review 9)
            msg = f"{pattern_words(str(err.get('ctx', {}).get('pattern', '')))}; got {_short(err.get('input'))}"
        elif (
            err["type"] in ("float_type", "int_type")
            and isinstance(err.get("input"), str)
            and _YAML12_FLOAT.match(err["input"].strip())
        ):
            # A quoted number ("14") is text in YAML; the schema takes numbers only (14, 14.0, 1e3).
            msg = f"a number, written without quotes; got text {_short(err['input'])}"
        elif err["type"] in ("float_type", "int_type") and isinstance(err.get("input"), str):
            # `2:10.5` or `1_00.5`: text to YAML 1.2 (and here), a real to YAML 1.1 (PyYAML)
            text = err["input"]
            msg = (
                f"{_FLOAT_RULE}; got text {_short(text)}{old}"
                if (old := _yaml11_reading(text))
                else f"{msg}; got {_short(text)}"
            )
        elif (
            err["type"] == "string_type"
            and isinstance(err.get("input"), int | float)
            and not isinstance(err.get("input"), bool)
        ):  # `lane: 1`: YAML reads a number (a newcomer review)
            msg = f"text; YAML reads {_short(err['input'])} as a number: write it in quotes ('{err['input']}')"
        elif err["type"] == "bool_type":  # strict: `yes`, `on`, 1 and "true" are not booleans here
            msg = f"true or false (without quotes); got {_short(err['input'])}"
        elif "input" in err and err["type"] not in ("missing",):
            msg = f"{msg}; got {_short(err['input'])}"
        if loc and loc[-1] == "[key]":  # a mapping's key, not its value, is wrong
            loc = loc[:-1]
            msg = f"(the key) {msg}"
        problems.append((_loc(loc), msg))
    return problems


# The expectation types (their discriminator tags), from the schema: a hand-kept list missed the later ones
# (misbehaviour, travel_time, string_stable, ...), whose problems then named "expectations[3].travel_time.actor".
_TAGS = {
    tag
    for model in _models_in(typing.get_args(Expectation)[0])
    for tag in typing.get_args(model.model_fields["type"].annotation)
}


MIN_LINE_M = 0.1  # the shortest line something follows (docs/SCENARIOS.md)


def line_problem(points: Sequence[tuple[float, float]]) -> str | None:
    """What is wrong with a line of the file that something follows by arc length (a lane's centre line, an
    actor's or a phantom's path, a road event's or sign's reference path), or None: it must be at least
    ``MIN_LINE_M`` long. (An attack review: a path of one point was a traceback at load, one of two equal points
    at run time; fuzz review 25: one 1e-200 m long passed a check of "positive" length, and the route that
    follows it, which measures it as shapely does, found zero length: a traceback.)"""
    length = math.fsum(math.dist(a, b) for a, b in itertools.pairwise(points))
    if length >= MIN_LINE_M:
        return None
    if len(points) < 2:
        got = "no point" if not points else "one point"
    elif length == 0:
        got = f"{len(points)} points, all at ({points[0][0]:g}, {points[0][1]:g})"
    else:
        got = f"{len(points)} points, {length:.3g} m long"
    return f"a line at least {MIN_LINE_M:g} m long (two or more points, not all one); got {got}"


def area_problem(points: Sequence[tuple[float, float]]) -> str | None:
    """What is wrong with an outline of the file (an obstacle's, a positioning zone's), or None: it must be a
    simple polygon (its edges do not cross) with a positive area. (An attack review: a zone shaped like a
    bow tie, or of points on one line, passed the checks and was a traceback at run time.)"""
    from v2x.scenario.geometry import polygon

    shape = polygon(list(points))
    if shape.is_valid and shape.area > 0:
        return None
    return "a simple polygon with a positive area; got an outline that crosses itself or encloses nothing"


def _road_problems(sc: Scenario) -> list[tuple[str, str]]:
    from v2x.scenario.signals import ingress

    problems: list[tuple[str, str]] = []
    lanes = {lane.id: lane for lane in sc.road.lanes}
    for i, spec in enumerate(sc.road.lanes):  # (an attack review: a zero-length lane beside another gave a traceback)
        if (problem := line_problem(spec.centerline)) is not None:
            problems.append((f"road.lanes[{i}].centerline", problem))
    if problems:
        return problems  # (every check below follows the lanes)
    for kind, ids in (
        ("lane", [lane.id for lane in sc.road.lanes]),
        ("intersection", [x.id for x in sc.road.intersections]),
    ):
        for dup in sorted({x for x in ids if ids.count(x) > 1}):
            problems.append((f"road.{kind}s", f"{kind} id {dup!r} is used twice"))
    for i, ix in enumerate(sc.road.intersections):
        if ix.signal is None:
            continue
        where = f"road.intersections[{i}].signal.phases"
        seen_phase: set[int] = set()
        seen_lane: set[str] = set()
        for p, phase in enumerate(ix.signal.phases):
            if phase.id in seen_phase:
                problems.append((f"{where}[{p}].id", f"phase id {phase.id} is used twice"))
            seen_phase.add(phase.id)
            for k, lane_id in enumerate(phase.lanes):
                loc = f"{where}[{p}].lanes[{k}]"
                lane = lanes.get(lane_id)
                if lane is None:
                    problems.append((loc, _one_of("the road's lanes", sorted(lanes), lane_id)))
                elif lane_id in seen_lane:
                    problems.append((loc, f"lane {lane_id!r} is controlled by two phases"))
                elif ingress(lane, ix) is None:
                    problems.append(
                        (
                            loc,
                            f"a lane that enters the intersection box (within {ix.radius_m} m of its centre); "
                            f"{lane_id!r} does not",
                        )
                    )
                seen_lane.add(lane_id)
    problems += _neighbour_problems(sc)
    return problems


def _a(kind: str) -> str:
    """``kind`` with its article ("an rsu", "a platform")."""
    return f"an {kind}" if kind == "rsu" or kind[0] in "aeiou" else f"a {kind}"


# What only a road user's actor entry may say (an rsu's or a platform's would be ignored)
ROAD_USER_FIELDS = frozenset(
    {"lane", "path", "start_m", "speed_mps", "length_m", "width_m", "positioning", "driver", "events", "phantom",
     "platoon", "device"}
)  # fmt: skip
NEIGHBOUR_HEADING_DEG = 15.0  # parallel lanes: directions of travel within this at every sample
NEIGHBOUR_LENGTH_M = 1.0  # ... lengths within this (the traffic model's parallel lanes share s)
NEIGHBOUR_GAP = (0.5, 1.5)  # ... centre-to-centre distance within these multiples of the half-widths' sum


def _neighbour_problems(sc: Scenario) -> list[tuple[str, str]]:
    """``road.lanes[i].left``/``right``: a known lane other than itself, beside it on that side (same
    direction of travel, about a lane width away, the same length), and no lane with two left or two
    right neighbours."""
    from v2x.scenario.geometry import lane_route

    problems: list[tuple[str, str]] = []
    lanes = {lane.id: lane for lane in sc.road.lanes}
    side_of: dict[tuple[str, str], str] = {}  # (lane, side) -> the neighbour, as declared or implied
    for i, lane in enumerate(sc.road.lanes):
        for side, other_id in (("left", lane.left), ("right", lane.right)):
            if other_id is None:
                continue
            loc = f"road.lanes[{i}].{side}"
            other = lanes.get(other_id)
            if other is None:
                problems.append((loc, _one_of("the road's lanes", sorted(lanes), other_id)))
                continue
            if other_id == lane.id:
                problems.append((loc, f"a lane beside {lane.id!r}, not the lane itself"))
                continue
            why = _not_beside(lane_route(lane), lane.width_m, lane_route(other), other.width_m, side)
            if why:
                problems.append((loc, f"a lane parallel to {lane.id!r} on its {side}: {other_id!r} {why}"))
                continue
            back = "right" if side == "left" else "left"
            for key, value in (((lane.id, side), other_id), ((other_id, back), lane.id)):
                if side_of.setdefault(key, value) != value:
                    problems.append(
                        (loc, f"{key[0]!r} would have two {key[1]} neighbours, {side_of[key]!r} and {value!r}")
                    )
    return problems


def _not_beside(a: Route, width_a: float, b: Route, width_b: float, side: str) -> str:
    """Why lane ``b`` is not beside lane ``a`` on ``side`` ('' if it is). Where it lies and heads first: a lane
    on the other side, or the other way, is the likelier mistake, which a length that differs too hid
    (newcomer 5)."""
    half = (width_a + width_b) / 2
    lo, hi = NEIGHBOUR_GAP[0] * half, NEIGHBOUR_GAP[1] * half
    sign = 1.0 if side == "left" else -1.0
    for f in (0.0, 0.25, 0.5, 0.75, 1.0):
        s = f * a.length
        off = sign * a.offset_to(s, b)
        if not lo <= off <= hi:
            where = (
                f"{off:.1f} m to the {side}"
                if off >= 0
                else f"{-off:.1f} m to the {'right' if side == 'left' else 'left'}"
            )
            return f"is {where} at {s:.0f} m along, {lo:.2f}-{hi:.2f} m to the {side} expected"
        turn = abs(wrap_angle_rad(b.pose(f * b.length).heading_rad - a.pose(s).heading_rad))
        if math.degrees(turn) > NEIGHBOUR_HEADING_DEG:
            return f"heads {math.degrees(turn):.0f} deg off at {s:.0f} m along (at most {NEIGHBOUR_HEADING_DEG})"
    if abs(a.length - b.length) > NEIGHBOUR_LENGTH_M:
        turn = abs(wrap_angle_rad(a.pose(a.length).heading_rad - a.pose(0.0).heading_rad))
        bend = (
            f"; on a bend the outer of two lanes {half:.1f} m apart is about {half * turn:.1f} m longer here: end "
            "the longer one earlier, or split the bend off as lanes of their own"
            if half * turn > NEIGHBOUR_LENGTH_M
            else ""
        )
        return (
            f"is {b.length:.1f} m long, {a.length:.1f} m expected (within {NEIGHBOUR_LENGTH_M} m: the traffic "
            f"model's side-by-side lanes share the distance along them){bend}"
        )
    return ""


def _semantic_problems(sc: Scenario) -> list[tuple[str, str]]:
    from v2x.impair import NETWORK_PROFILES, POSITIONING_PROFILES, STATE_NAMES
    from v2x.scenario.sensors import resolve as resolve_sensor

    problems: list[tuple[str, str]] = []
    lane_ids = [lane.id for lane in sc.road.lanes]
    ix_ids = [ix.id for ix in sc.road.intersections]
    problems += _road_problems(sc)
    problems += _script_problems(sc)
    ids = [a.id for a in sc.actors]
    event_ids = [ev.id for a in sc.actors for ev in (*a.road_events, *a.road_signs)]
    event_ids += [watch.id for a in sc.actors for watch in a.congestion]
    seen: set[str] = set()
    for i, actor in enumerate(sc.actors):
        if actor.id in seen:
            problems.append((f"actors[{i}].id", f"actor id {actor.id!r} is used twice"))
        if actor.id.startswith(BACKGROUND_ID_PREFIX):
            problems.append(
                (
                    f"actors[{i}].id",
                    f"an id that does not start with {BACKGROUND_ID_PREFIX!r} (the background vehicles' ids,"
                    f" {BACKGROUND_ID_PREFIX}<flow>-<n>); got {actor.id!r}",
                )
            )
        seen.add(actor.id)
        if actor.lane is not None and actor.lane not in lane_ids:
            problems.append((f"actors[{i}].lane", _one_of("the road's lanes", lane_ids, actor.lane)))
        if actor.phantom is not None and actor.phantom.lane is not None and actor.phantom.lane not in lane_ids:
            problems.append((f"actors[{i}].phantom.lane", _one_of("the road's lanes", lane_ids, actor.phantom.lane)))
        if actor.positioning is not None and actor.positioning not in POSITIONING_PROFILES:
            problems.append(
                (
                    f"actors[{i}].positioning",
                    f"a positioning profile {sorted(POSITIONING_PROFILES)}; got {actor.positioning!r}",
                )
            )
        if actor.apps and actor.kind not in (*ROAD_USER_KINDS, "platform"):
            problems.append((f"actors[{i}].apps", f"apps run on road users or the platform, not a {actor.kind}"))
        for app in dict.fromkeys(actor.apps):
            if app == "platoon":
                problems.append((f"actors[{i}].apps", "platoon is run by a 'platoon:' block, not listed in apps"))
                continue
            runs_on = app_spec(app).runs_on
            if runs_on is RunsOn.EDGE and actor.kind != "platform":
                problems.append((f"actors[{i}].apps", f"{app} runs on the edge/cloud platform (kind: platform)"))
            if runs_on is RunsOn.VEHICLE and actor.kind not in ROAD_USER_KINDS:
                problems.append((f"actors[{i}].apps", f"{app} runs on board a road user"))
        if not actor.equipped:
            if actor.kind not in ROAD_USER_KINDS:
                problems.append((f"actors[{i}].equipped", f"only a road user can be unequipped, not a {actor.kind}"))
            if actor.apps:
                problems.append((f"actors[{i}].apps", "an unequipped road user (no OBU) runs no apps"))
        for k, ev in enumerate(actor.events):
            if ev.action in LANE_ACTIONS:
                loc = f"actors[{i}].events[{k}]"
                if actor.kind not in VEHICLE_KINDS:
                    problems.append(
                        (
                            f"{loc}.action",
                            f"'{ev.action}' is a vehicle's manoeuvre: {list(VEHICLE_KINDS)}, not a {actor.kind}",
                        )
                    )
                if ev.lane not in lane_ids:
                    problems.append((f"{loc}.lane", _one_of("the road's lanes", lane_ids, str(ev.lane))))
                continue
            if ev.action not in FLAG_ACTIONS:
                continue
            loc = f"actors[{i}].events[{k}].action"
            if ev.action in EMERGENCY_FLAG_ACTIONS and actor.kind != "emergency":
                problems.append(
                    (
                        loc,
                        f"'{ev.action}' is sent in an emergency vehicle's BSM (kind: emergency), not a {actor.kind}'s",
                    )
                )
            elif actor.kind not in VEHICLE_KINDS:
                problems.append(
                    (loc, f"'{ev.action}' is a vehicle's BSM event flag: {list(VEHICLE_KINDS)}, not a {actor.kind}")
                )
            elif not actor.equipped:
                problems.append((loc, f"'{ev.action}' is sent in the BSM: an unequipped vehicle (no OBU) sends none"))
        given = actor.model_fields_set  # (what the file says, not the defaults: a newcomer review's RSU with a
        # lane, a speed, a driver and braking events ran with exit 0, all of it ignored)
        if actor.kind not in ROAD_USER_KINDS:
            for name in sorted(given & ROAD_USER_FIELDS):
                problems.append(
                    (
                        f"actors[{i}].{name}",
                        f"applies to road users {list(ROAD_USER_KINDS)}, not {_a(actor.kind)}",
                    )
                )
        if actor.kind != "rsu" and "position" in given:
            where = "starts on its lane or path (start_m)" if actor.kind in ROAD_USER_KINDS else "has no position"
            problems.append((f"actors[{i}].position", f"only an rsu stands at a position; {_a(actor.kind)} {where}"))
        if actor.sensors and actor.kind != "rsu":
            problems.append((f"actors[{i}].sensors", "only an rsu carries roadside sensors"))
        if actor.range_m is not None and actor.kind != "rsu":
            problems.append((f"actors[{i}].range_m", "only an rsu declares a PC5 coverage of its own"))
        if actor.shares_as != "rsm" and (actor.kind != "rsu" or not actor.sensors):
            problems.append((f"actors[{i}].shares_as", "only an rsu with sensors shares what they detect"))
        if actor.device == "phone" and not actor.equipped:
            problems.append((f"actors[{i}].device", "a phone sends PSM: 'equipped: false' means no device at all"))
        for k, sensor in enumerate(actor.sensors):
            period = resolve_sensor(sensor).period_s
            if period < sc.tick_s - 1e-9:
                # (a default the file never wrote is said to be one: newcomer review 9 had written tick_s only)
                got = (
                    f"{period:g}"
                    if sensor.period_s is not None
                    else f"{period:g}, the {sensor.kind}'s default (give period_s, or a shorter tick_s)"
                )
                problems.append(
                    (
                        f"actors[{i}].sensors[{k}].period_s",
                        f"at least the tick ({sc.tick_s:g} s): one frame per tick at most; got {got}",
                    )
                )
        if actor.platoon is not None:
            if actor.kind not in VEHICLE_KINDS or not actor.equipped or actor.external:
                problems.append(
                    (f"actors[{i}].platoon", f"a platoon takes built-in vehicles with an OBU {list(VEHICLE_KINDS)}")
                )
            elif actor.platoon.role == "member" and not any(
                a.platoon is not None and a.platoon.role == "leader" for a in sc.actors
            ):
                problems.append((f"actors[{i}].platoon", "a member needs a leader (platoon: {role: leader})"))
            elif actor.platoon.role == "member" and (actor.events or actor.driver is not None):
                problems.append(
                    (f"actors[{i}].platoon", "a member's longitudinal controller drives it: no 'events' or 'driver'")
                )
        problems += _rsi_problems(sc, i, "road_events")
        problems += _rsi_problems(sc, i, "road_signs")
        problems += _congestion_problems(sc, i)
        if actor.intersections is not None:
            if actor.kind != "rsu":
                problems.append((f"actors[{i}].intersections", "only an rsu serves intersections"))
            for k, ix_ref in enumerate(actor.intersections):
                if ix_ref not in ix_ids:
                    problems.append(
                        (f"actors[{i}].intersections[{k}]", _one_of("the road's intersections", ix_ids, ix_ref))
                    )
    outlines = [(f"obstacles[{i}]", o.polygon) for i, o in enumerate(sc.obstacles)]
    outlines += [(f"zones[{i}]", z.polygon) for i, z in enumerate(sc.zones)]
    for where, points in outlines:
        if (problem := area_problem(points)) is not None:
            problems.append((f"{where}.polygon", problem))
    if sum(a.kind == "platform" for a in sc.actors) > 1:
        problems.append(("actors", "at most one actor of kind 'platform'"))
    for ix in sc.road.intersections:  # one controller per light: the world refuses a second RSU's SPAT for it
        if ix.signal is None:
            continue
        runs = [
            (i, a)
            for i, a in enumerate(sc.actors)
            if a.kind == "rsu" and (a.intersections is None or ix.id in a.intersections)
        ]
        for i, _ in runs[1:]:  # (signals.served's rule: an rsu serves every intersection by default)
            first = f"actors[{runs[0][0]}] ({runs[0][1].id})"
            problems.append((
                f"actors[{i}].intersections",
                f"serves the signalised intersection {ix.id!r}, as {first} does: one rsu runs a light's controller "
                f"and sends its SPAT; list this one's intersections without {ix.id!r} ([] for none: an rsu serves "
                "every intersection by default)",
            ))  # fmt: skip
    if sc.n_ticks < 1:  # (an attack review: duration_s 1e-320 was taken, and the run was 0 s long)
        problems.append(("duration_s", f"at least one tick ({sc.tick_s:g} s); got {sc.duration_s:g}"))
    if sc.positioning not in POSITIONING_PROFILES:
        expected = f"a positioning profile {sorted(POSITIONING_PROFILES)}; got {sc.positioning!r}"
        problems.append(("positioning", expected))
    for field, kind in (("pc5", "sidelink"), ("uu", "cellular"), ("wired", "wired")):
        name = getattr(sc.network, field)
        if name not in NETWORK_PROFILES:
            problems.append((f"network.{field}", f"a network profile {sorted(NETWORK_PROFILES)}; got {name!r}"))
        elif NETWORK_PROFILES[name].kind != kind:  # (a cellular profile on the PC5 link: a newcomer review)
            fits = sorted(n for n, p in NETWORK_PROFILES.items() if p.kind == kind)
            problems.append(
                (f"network.{field}", f"a {kind} profile {fits}; got {name!r}, a {NETWORK_PROFILES[name].kind} one")
            )
    for key, value in sc.thresholds.items():
        if key not in THRESHOLD_DEFAULTS:
            problems.append((f"thresholds.{key}", _one_of("the thresholds", THRESHOLD_DEFAULTS, key)))
        elif not THRESHOLD_BOUNDS[key].admits(value):
            problems.append(
                (
                    f"thresholds.{key}",
                    f"a value {THRESHOLD_BOUNDS[key]} (default {THRESHOLD_DEFAULTS[key]:g}); got {value:g}",
                )
            )
    intersection_ids = {ix.id for ix in sc.road.intersections}
    for i, exp in enumerate(sc.expectations):
        refs: list[tuple[str, str | None]] = []
        state = getattr(exp, "state", None)
        if state is not None and state not in STATE_NAMES:
            problems.append((f"expectations[{i}].state", f"a receiver state {list(STATE_NAMES)}; got {state!r}"))
        for attr in ("target", "other", "actor", "suspect"):
            refs.append((attr, getattr(exp, attr, None)))
        actors = getattr(exp, "actors", None)
        if actors:
            refs += [(f"actors[{k}]", a) for k, a in enumerate(actors)]
        for attr, ref in refs:
            if ref is None or ref in ids:
                continue
            if attr == "other" and intersection_ids and ref in intersection_ids:
                continue  # RLVW and GLOSA name the intersection
            if attr == "other" and event_ids:
                if ref not in event_ids:
                    expected = f"an actor id {ids} or a road event / sign id {event_ids}; got {ref!r}"
                    problems.append((f"expectations[{i}].{attr}", expected + did_you_mean(ref, [*ids, *event_ids])))
            else:
                wanted = f"an actor id {ids}; got {ref!r}" + did_you_mean(ref, ids)
                problems.append((f"expectations[{i}].{attr}", wanted))
        if exp.variant not in sc.variants:
            expected = f"one of the scenario's variants {list(dict.fromkeys(sc.variants))}; got {exp.variant!r}"
            problems.append((f"expectations[{i}].variant", expected))
        problems += _app_not_run(sc, i, exp)
        problems += _safety_problems(sc, i, exp)
    flow_lanes: set[str] = set()
    for i, flow in enumerate(sc.flows):
        if flow.lane not in lane_ids:
            problems.append((f"flows[{i}].lane", _one_of("the road's lanes", lane_ids, flow.lane)))
        elif flow.lane in flow_lanes:
            problems.append((f"flows[{i}].lane", f"one flow per lane entry; {flow.lane!r} has two"))
        flow_lanes.add(flow.lane)
        if flow.positioning is not None and flow.positioning not in POSITIONING_PROFILES:
            expected = f"a positioning profile {sorted(POSITIONING_PROFILES)}; got {flow.positioning!r}"
            problems.append((f"flows[{i}].positioning", expected))
    return problems


def _safety_problems(sc: Scenario, i: int, exp: Any) -> list[tuple[str, str]]:
    """A ``min_gap``, ``max_decel``, ``stays_on_route`` or ``gap`` expectation about an actor that is not a road
    user (an rsu or the platform has no box on the road, nor a speed of its own), and a ``stays_on_route`` one about
    a road user with no route (an external actor with neither ``lane`` nor ``path``). Unknown ids are named
    by the reference check."""
    if not isinstance(exp, MinGapExpectation | MaxDecelExpectation | StaysOnRouteExpectation | GapExpectation):
        return []
    specs = {a.id: a for a in sc.actors}
    refs = [(f"actors[{k}]", a) for k, a in enumerate(exp.actors)] if isinstance(exp, MinGapExpectation) else []
    if not isinstance(exp, MinGapExpectation):
        refs.append(("actor", exp.actor))
    if isinstance(exp, GapExpectation):  # (a diff review: a gap about an rsu loaded, and was "not measured")
        refs.append(("other", exp.other))
    problems = []
    for attr, ref in refs:
        spec = specs.get(ref)
        if spec is None:
            continue
        if spec.kind not in ROAD_USER_KINDS:
            expected = f"a road user ({', '.join(ROAD_USER_KINDS)}); got {ref!r}, {_a(spec.kind)}"
            problems.append((f"expectations[{i}].{attr}", expected))
        elif isinstance(exp, StaysOnRouteExpectation) and spec.lane is None and spec.path is None:
            expected = f"a road user with a route ('lane' or 'path' in its actor entry); {ref!r} has neither"
            problems.append((f"expectations[{i}].{attr}", expected))
    return problems


def _app_not_run(sc: Scenario, i: int, exp: Any) -> list[tuple[str, str]]:
    """A warning / no_warning expectation about an app that nobody runs where its warnings come from (the
    target's OBU, or an edge platform): the first can never hold, the second holds whatever happens (a
    no_warning about RLVW on a car without RLVW passed, and a sweep counted it as a silent case: newcomer
    review 6). An outside stack's actor runs the apps its stack has: not judged."""
    if getattr(exp, "type", None) not in ("warning", "no_warning") or exp.app is None:
        return []
    try:
        spec = app_spec(exp.app)
    except KeyError:
        return []  # (the schema names the apps)
    actors = {a.id: a for a in sc.actors}
    target = actors.get(exp.target)
    if target is None or target.external:
        return []
    if spec.runs_on is RunsOn.VEHICLE:
        # (the platoon app runs on a vehicle with a `platoon:` role, not through its `apps`)
        if exp.app in target.apps or (exp.app == "platoon" and target.platoon is not None):
            return []
        where = f"{exp.target!r} does not run {exp.app!r} (its apps: {list(target.apps)})"
    else:
        if any(exp.app in a.apps for a in sc.actors):
            return []
        where = f"no actor runs {exp.app!r} (an edge platform's app)"
    means = "can never hold" if exp.type == "warning" else "holds whatever happens"
    return [(f"expectations[{i}].app", f"an app that reaches the target; {where}: the expectation {means}")]


def _script_problems(sc: Scenario) -> list[tuple[str, str]]:
    """Values each valid alone that make no sense together, or that would quietly do nothing: an actor
    placed beyond the end of its lane or path, two road users on one lane whose boxes overlap at t = 0 (they
    would collide at once), events out of time order or after the end of the run, a ``brake`` or
    ``accelerate`` without a rate, an app or a variant listed twice, an expectation's window that ends
    before it starts, and an explicitly empty list of expectations."""
    from shapely.geometry import LineString

    problems: list[tuple[str, str]] = []
    lanes = {lane.id: lane for lane in sc.road.lanes}
    length = {lane.id: float(LineString(lane.centerline).length) for lane in sc.road.lanes}
    for k, variant in enumerate(sc.variants):
        if variant in sc.variants[:k]:
            problems.append(
                (f"variants[{k}]", f"each variant once (of {', '.join(ALL_VARIANTS)}); got {variant!r} twice")
            )
    for i, actor in enumerate(sc.actors):
        for where, placed in ((f"actors[{i}]", actor), (f"actors[{i}].phantom", actor.phantom)):
            if placed is None:
                continue
            if placed.lane in lanes:
                along, end = f"lane {placed.lane!r}", length[placed.lane]
            elif placed.path is not None:
                if (problem := line_problem(placed.path)) is not None:
                    problems.append((f"{where}.path", problem))
                    continue
                along, end = "its path", float(LineString(placed.path).length)
            else:
                continue
            if placed.start_m > end + 1e-9:
                problems.append(
                    (
                        f"{where}.start_m",
                        f"a distance along {along} within its length (0..{end:g} m, along its centre line); "
                        f"got {placed.start_m:g}",
                    )
                )
        for k, app in enumerate(actor.apps):
            if app in actor.apps[:k]:
                problems.append((f"actors[{i}].apps[{k}]", f"each app once; got {app!r} twice"))
        previous = 0.0
        for k, ev in enumerate(actor.events):
            loc = f"actors[{i}].events[{k}]"
            if ev.at_s < previous:
                problems.append(
                    (
                        f"{loc}.at_s",
                        f"events in time order: at or after the one before ({previous:g} s); got {ev.at_s:g}",
                    )
                )
            previous = max(previous, ev.at_s)
            if ev.action in ("brake", "accelerate") and not ev.rate_mps2 > 0:
                problems.append(
                    (
                        f"{loc}.rate_mps2",
                        f"a rate > 0 (m/s^2) for '{ev.action}'; got "
                        + (f"{ev.rate_mps2:g}" if "rate_mps2" in ev.model_fields_set else "none"),
                    )
                )
    problems += _overlap_problems(sc, length)
    for i, exp in enumerate(sc.expectations):
        window = getattr(exp, "window_s", None)
        if window is not None and window[0] > window[1]:
            problems.append(
                (f"expectations[{i}].window_s", f"[start, end] with start <= end; got [{window[0]:g}, {window[1]:g}]")
            )

    if "expectations" in sc.model_fields_set and not sc.expectations:
        problems.append(
            (
                "expectations",
                "at least one expectation to check (with none the scenario passes whatever happens; leave "
                "'expectations' out to run it without checks); got []",
            )
        )
    return problems


def _overlap_problems(sc: Scenario, length: dict[str, float]) -> list[tuple[str, str]]:
    """Two road users on the same lane whose boxes overlap at t = 0: their centres (``start_m``) are closer
    along the lane than half the sum of their lengths (side by side on one centre line, their widths always
    overlap). The referee would record a collision at t = 0.00 s.

    Each lane's road users are sorted by ``start_m`` and only neighbours in that order are compared (a
    sort-and-sweep along the lane: n log n, where every pair took 85 s for 6,000 actors: a fuzz review). That
    misses no file with an overlap: if a and b overlap, some neighbours between them do (the gaps between
    neighbours add up to a - b's, and each is at least half the sum of their lengths if none overlaps). Each
    overlap is said once, at the later actor in the file."""
    problems: list[tuple[int, int, str]] = []
    by_lane: dict[str, list[tuple[float, int]]] = {}
    for i, actor in enumerate(sc.actors):
        if actor.kind in ROAD_USER_KINDS and actor.lane in length:
            by_lane.setdefault(actor.lane, []).append((actor.start_m, i))
    for lane, users in by_lane.items():
        users.sort()
        for (_, p), (_, q) in itertools.pairwise(users):
            i, j = min(p, q), max(p, q)
            a, b = sc.actors[i], sc.actors[j]
            gap, room = abs(a.start_m - b.start_m), (a.box_m[0] + b.box_m[0]) / 2
            if gap < room:
                problems.append(
                    (
                        i,
                        j,
                        f"a place clear of {a.id!r} (actors[{i}]) on lane {lane!r}: centres at least {room:g} m "
                        f"apart (half the sum of their lengths); {b.id!r} and {a.id!r} are {gap:g} m apart and "
                        "would collide at t = 0",
                    )
                )
    return [(f"actors[{j}].start_m", msg) for _, j, msg in sorted(problems)]


def _rsi_problems(sc: Scenario, i: int, field: Literal["road_events", "road_signs"]) -> list[tuple[str, str]]:
    """Checks of ``actors[i].road_events`` or ``.road_signs`` (what one RSI carries): only an rsu has them,
    at most 8 events / 16 signs, ids unique among events and signs and not actor ids, known lanes whose
    centre lines fit a CSAE 53 reference path, and each item on (an event: within its radius plus the
    half-width) or beside (a sign: within ``SIGN_MAX_OFFSET_M`` plus the half-width) its reference paths."""
    from shapely.geometry import LineString, Point

    from v2x.wire.rsi import RSI_MAX_EVENTS, RSI_MAX_PATH_POINTS, RSI_MAX_SIGNS

    actor = sc.actors[i]
    where = f"actors[{i}].{field}"
    items: list[RoadEventSpec] | list[RoadSignSpec] = getattr(actor, field)
    what, most = ("road events", RSI_MAX_EVENTS) if field == "road_events" else ("road signs", RSI_MAX_SIGNS)
    if not items:
        return []
    if actor.kind != "rsu":
        return [(where, f"only an rsu announces {what} (RSI), not a {actor.kind}")]
    problems: list[tuple[str, str]] = []
    if len(items) > most:
        problems.append((where, f"at most {most} {what} per rsu (one RSI); got {len(items)}"))
    lanes = {lane.id: lane for lane in sc.road.lanes}
    actor_ids = {a.id for a in sc.actors}
    # ids met before: earlier RSUs' events and signs, and this RSU's events when checking its signs
    seen = [ev.id for a in sc.actors[:i] for ev in (*a.road_events, *a.road_signs)]
    if field == "road_signs":
        seen += [ev.id for ev in actor.road_events]
    for k, item in enumerate(items):
        loc = f"{where}[{k}]"
        if item.id in actor_ids:
            problems.append((f"{loc}.id", f"an id that no actor has; {item.id!r} is an actor's"))
        elif item.id in seen:
            problems.append((f"{loc}.id", f"{what[:-1]} id {item.id!r} is used twice (events and signs share ids)"))
        seen.append(item.id)
        paths: list[tuple[str, list[tuple[float, float]], float]] = []
        for j, lane_id in enumerate(item.lanes or []):
            lane = lanes.get(lane_id)
            if lane is None:
                problems.append((f"{loc}.lanes[{j}]", _one_of("the road's lanes", sorted(lanes), lane_id)))
            elif len(lane.centerline) > RSI_MAX_PATH_POINTS:
                problems.append(
                    (
                        f"{loc}.lanes[{j}]",
                        f"a lane of at most {RSI_MAX_PATH_POINTS} centre-line points (a CSAE 53 reference path); "
                        f"{lane_id!r} has {len(lane.centerline)}",
                    )
                )
            else:
                paths.append((f"lane {lane_id!r}", list(lane.centerline), lane.width_m / 2))
        if item.path is not None:
            if (problem := line_problem(item.path)) is not None:
                problems.append((f"{loc}.path", problem))
            else:
                paths.append(("path", list(item.path), item.path_radius_m))
        if isinstance(item, RoadEventSpec):
            reach, text = item.radius_m, "radius_m + half the width"
        else:
            reach, text = SIGN_MAX_OFFSET_M, f"{SIGN_MAX_OFFSET_M:g} m (the roadside) + half the width"
        for name, points, half_width in paths:
            off = float(LineString(points).distance(Point(item.position)))
            if off > reach + half_width + 1e-9:
                problems.append(
                    (
                        f"{loc}.position",
                        f"a point within {text} ({reach + half_width:g} m) of its reference path; "
                        f"it is {off:.1f} m from {name}",
                    )
                )
    return problems


def _congestion_problems(sc: Scenario, i: int) -> list[tuple[str, str]]:
    """Checks of ``actors[i].congestion`` (lanes an RSU watches for queues, TJW): only an rsu has them, its
    road events and congestion events fit one RSI (8), known lanes, ids unique among every RSI item and not
    actor ids."""
    from v2x.wire.rsi import RSI_MAX_EVENTS

    actor = sc.actors[i]
    where = f"actors[{i}].congestion"
    if not actor.congestion:
        return []
    if actor.kind != "rsu":
        return [(where, f"only an rsu watches lanes for queues (TJW), not a {actor.kind}")]
    problems: list[tuple[str, str]] = []
    if len(actor.road_events) + len(actor.congestion) > RSI_MAX_EVENTS:
        problems.append(
            (where, f"road_events and congestion together at most {RSI_MAX_EVENTS} per rsu (one RSI's events)")
        )
    lane_ids = [lane.id for lane in sc.road.lanes]
    actor_ids = {a.id for a in sc.actors}
    items = [ev.id for a in sc.actors for ev in (*a.road_events, *a.road_signs)]
    seen = [w.id for a in sc.actors[:i] for w in a.congestion]
    for k, watch in enumerate(actor.congestion):
        loc = f"{where}[{k}]"
        if watch.id in actor_ids:
            problems.append((f"{loc}.id", f"an id that no actor has; {watch.id!r} is an actor's"))
        elif watch.id in items or watch.id in seen:
            problems.append((f"{loc}.id", f"congestion id {watch.id!r} is used twice (RSI items share ids)"))
        seen.append(watch.id)
        if watch.lane not in lane_ids:
            problems.append((f"{loc}.lane", _one_of("the road's lanes", lane_ids, watch.lane)))
    return problems


# What a YAML document that is not a mapping is, in a problem's words.
_KIND_OF: dict[type, str] = {list: "a list", str: "text", int: "a number", float: "a number", bool: "true/false"}


def load_scenario(path: Path | str) -> Scenario:
    """Parse and validate a scenario file. Raises ScenarioError with every problem found."""
    path = Path(path)
    data = _read_yaml(path)
    if data is None:
        raise ScenarioError(
            path, [("", "expected a mapping (the scenario); got nothing (an empty file, or only comments)")]
        )
    if not isinstance(data, dict):
        got = _KIND_OF.get(type(data), type(data).__name__)
        raise ScenarioError(path, [("", f"expected a mapping (the scenario) at the top level; got {got}")])
    actors = data.get("actors")
    if isinstance(actors, list) and len(actors) > SCENARIO_MAX_ACTORS:  # (before each is validated: a fuzz review)
        raise ScenarioError(path, [("actors", _too_many_actors(len(actors)))])
    ids = _actor_ids(data)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(path, pydantic_problems(exc), ids) from exc
    problems = _semantic_problems(scenario)
    sumo_lengths: list[float] = []
    if scenario.sumo is not None:
        scenario, sumo_problems, sumo_lengths = _with_sumo_files(scenario, path.parent)
        problems += sumo_problems
    if not problems:
        problems += _background_room_problems(scenario, sumo_lengths)
    if problems:
        raise ScenarioError(path, problems, ids)
    return scenario


def _too_many_actors(n: int) -> str:
    return (
        f"at most {SCENARIO_MAX_ACTORS:,} actors (a run's built-in agents share one broker connection with a "
        f"subscription per actor plus one, and the embedded broker takes {SCENARIO_MAX_ACTORS + 1:,} per "
        f"connection); got {n:,}: give large traffic as 'flows' (background vehicles, docs/SCENARIOS.md "
        '"Background traffic")'
    )


def _background_room_problems(sc: Scenario, sumo_lengths: Sequence[float]) -> list[tuple[str, str]]:
    """The background traffic's room (one vehicle every BACKGROUND_PACKED_M m of the lanes it may take: every
    lane of the scenario for ``flows``, of SUMO's network for ``sumo``, whose lane lengths ``_with_sumo_files``
    read) within MAX_BACKGROUND_VEHICLES. The world sizes itself by what the flows can reach, plus one per flow:
    at most this and the number of flows."""
    if sc.sumo is not None:
        field, lengths = "sumo.net", list(sumo_lengths)
    elif sc.flows:
        from shapely.geometry import LineString

        field, lengths = "flows", [float(LineString(lane.centerline).length) for lane in sc.road.lanes]
    else:
        return []
    room = sum(math.ceil(length / BACKGROUND_PACKED_M) for length in lengths)
    if room <= MAX_BACKGROUND_VEHICLES:
        return []
    km = sum(lengths) / 1000
    return [
        (
            field,
            f"lanes the background traffic can fill with at most {MAX_BACKGROUND_VEHICLES} vehicles (one every "
            f"{BACKGROUND_PACKED_M:g} m); these lanes total {km:,.0f} km, room for {room} (shorten the lanes, "
            "or split the scenario)",
        )
    ]


def same_ids(loaded: Iterable[tuple[Path, Scenario]]) -> list[ScenarioError]:
    """The files among ``loaded`` (scenario files given to one command, each with what it holds) whose
    scenario has the id of an earlier one: a run keeps its results by id (``DIR/<id>/result.json``, the
    golden file, the JUnit case), so the second would overwrite the first's."""
    first: dict[str, Path] = {}
    out: list[ScenarioError] = []
    for path, sc in loaded:
        other = first.setdefault(sc.id, path)
        if other != path:
            expected = (
                f"an id no other scenario of this run has (results are kept by id: DIR/{sc.id}/result.json); "
                f"{sc.id!r} is also the id of {other}"
            )
            out.append(ScenarioError(path, [("id", expected)]))
    return out


#: A road user starting faster than this many times its lane's limit gets a note (``scenario_notes``).
FAST_START_FACTOR = 1.5


#: Events and expectation windows later than this many times the run's duration get a note (``scenario_notes``).
LATE_FACTOR = 10.0


def scenario_notes(sc: Scenario) -> list[str]:
    """Notes (not errors) on what runs as written but looks like a mistake of units. Road users that start
    much faster than their lane's limit (a ``path`` actor's: the lane it starts on, if any): more than
    ``FAST_START_FACTOR`` times it and 10 km/h over. A speed in km/h written as ``speed_mps`` looks like this (a
    newcomer review: 60 on an 80 km/h lane ran, into a collision at 50 m/s; a pilot-zone review: 40 on a path
    through a 50 km/h crossing, without a word); a scenario that means it (a speeder) runs as written.
    Scripted events and expectation windows far after the run's end, more than ``LATE_FACTOR`` times its
    duration (milliseconds written as seconds: newcomer 5): an event after ``duration_s`` is allowed, so that a
    run shortened to its first seconds keeps its script (and says nothing), but never happens, and a window
    after it cannot hold; a window that ends that far after it (``[0, 8000]`` in a 25 s run: newcomer review 9)
    is judged up to the end only."""
    limits = {lane.id: lane.speed_limit_kph for lane in sc.road.lanes}
    out = []
    far = LATE_FACTOR * sc.duration_s
    late = [(a.id, ev.at_s) for a in sc.actors for ev in a.events if ev.at_s > far]
    if late:
        listed = ", ".join(f"{who} at {t:g} s" for who, t in late[:5])
        out.append(
            f"{sc.id}: events after the run's end ({sc.duration_s:g} s) never happen: {listed} (at_s is in seconds)"
        )
    for i, exp in enumerate(sc.expectations):
        window = getattr(exp, "window_s", None)
        if window is not None and window[0] > far:
            out.append(
                f"{sc.id}: expectations[{i}] ({exp.name}): its window [{window[0]:g}, {window[1]:g}] s starts "
                f"after the run's end ({sc.duration_s:g} s): it cannot hold (window_s is in seconds)"
            )
        elif window is not None and window[1] > far:  # ([0, 8000] in a 25 s run: newcomer review 9)
            out.append(
                f"{sc.id}: expectations[{i}] ({exp.name}): its window [{window[0]:g}, {window[1]:g}] s ends long "
                f"after the run's end ({sc.duration_s:g} s): it is judged up to {sc.duration_s:g} s only (window_s "
                "is in seconds)"
            )
    out.extend(_unknown_turns(sc))
    for a in sc.actors:
        lane = a.lane if a.lane is not None else _path_start_lane(sc, a)
        limit_kph = limits.get(lane) if lane is not None else None
        if limit_kph is None:
            continue
        kph = mps_to_kph(a.speed_mps)
        if kph > FAST_START_FACTOR * limit_kph and kph > limit_kph + 10:
            where = f"on lane {lane}" if a.lane is not None else f"on a path that starts on lane {lane}"
            out.append(
                f"{sc.id}: {a.id} starts at speed_mps {a.speed_mps:g} ({kph:.0f} km/h) {where}, whose "
                f"limit is {limit_kph:g} km/h (speed_mps is in metres per second)"
            )
    return out


def _path_start_lane(sc: Scenario, actor: ActorSpec) -> str | None:
    """The lane a ``path`` actor starts on (``scenario_notes``): the one whose centre line is nearest its
    centre at ``start_m``, within half the lane's width of it; None if it starts on no lane (or has no path)."""
    from shapely.geometry import Point

    from v2x.scenario.geometry import Route, lane_route

    if actor.path is None:
        return None
    start = Route(list(actor.path)).pose(actor.start_m)
    here = Point(start.x, start.y)
    near = [(lane_route(lane).line.distance(here), lane) for lane in sc.road.lanes]
    on = [(d, lane.id) for d, lane in near if d <= lane.width_m / 2]
    return min(on)[1] if on else None


def _unknown_turns(sc: Scenario) -> list[str]:
    """A note per signalised lane whose centre line ends in its intersection's box and that gives no ``turn``:
    its movement is not known (newcomer 9: a left-turn lane ending at the box went out as a protected
    straight movement)."""
    from v2x.scenario.signals import box_exit, ingress

    lanes = {lane.id: lane for lane in sc.road.lanes}
    out = []
    for ix in sc.road.intersections:
        for lane_id in sorted({k for p in ix.signal.phases for k in p.lanes} if ix.signal else ()):
            lane = lanes.get(lane_id)
            if lane is None or lane.turns or ingress(lane, ix) is None or box_exit(lane, ix) is not None:
                continue
            out.append(
                f"{sc.id}: lane {lane_id} ends in intersection {ix.id}'s box and gives no 'turn': MAP gives it no "
                "maneuvers, and its green is permissive if any turn it might make gives way (say turn: left, right, "
                "straight or u_turn)"
            )
    return out


def _with_sumo_files(sc: Scenario, base: Path) -> tuple[Scenario, list[tuple[str, str]], list[float]]:
    """The scenario with its ``sumo`` files resolved against ``base`` (the scenario file's folder) and read:
    a SUMO network and a demand file (``v2x.scenario.sumo``); the problems found, by field; and the lengths of
    the network's lanes (m; none when it could not be read), for the background traffic's room."""
    from v2x.scenario.sumo import check_routes, read_lanes

    assert sc.sumo is not None
    problems: list[tuple[str, str]] = []
    if sc.flows:
        problems.append(("sumo", "either 'flows' or 'sumo' moves the background traffic, not both"))
    resolved: dict[str, str] = {}
    lengths: list[float] = []
    for name in ("net", "routes"):
        given = Path(getattr(sc.sumo, name))
        target = given if given.is_absolute() else base / given
        if not target.is_file():
            problems.append((f"sumo.{name}", f"a file (relative to the scenario file); {str(target)!r} does not exist"))
            continue
        try:
            if name == "net":
                lengths = [lane.length_m for lane in read_lanes(target)]
            else:
                check_routes(target)
        except ValueError as exc:
            problems.append((f"sumo.{name}", str(exc)))
        resolved[name] = str(target.resolve())
    return sc.model_copy(update={"sumo": sc.sumo.model_copy(update=resolved)}), problems, lengths


def find_scenario(name: str) -> Path:
    """A scenario file given as a path, or a shipped scenario given by its id (``fcw`` -> scenarios/fcw.yaml;
    case and a ``.yaml`` suffix are forgiven). An id that names no shipped scenario raises ScenarioError
    listing the close matches and pointing to ``v2x list``."""
    candidate = Path(name)
    if candidate.exists() and not (candidate.is_dir() and is_shipped_id(name)):
        return candidate
    shipped = {p.stem: p for p in catalogue()}
    key = candidate.name.lower().removesuffix(".yaml").removesuffix(".yml")
    if key in shipped and candidate.parent == Path("."):
        return shipped[key]
    if candidate.suffix in (".yaml", ".yml") or len(candidate.parts) > 1:
        raise ScenarioError(name, [("", "no such file (and not the id of a shipped scenario; see 'v2x list')")])
    close = difflib.get_close_matches(key, list(shipped), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ScenarioError(name, [("", f"not a shipped scenario id nor a file{hint} ('v2x list' shows the ids)")])


def is_shipped_id(name: str) -> bool:
    """Whether ``name`` is a shipped scenario's id as :func:`find_scenario` takes one (no folder part)."""
    candidate = Path(name)
    key = candidate.name.lower().removesuffix(".yaml").removesuffix(".yml")
    return candidate.parent == Path(".") and (SCENARIO_DIR / f"{key}.yaml").is_file()


def scenario_names(name: str) -> list[str]:
    """The scenario names one command-line argument stands for, as `v2x run` and `v2x check` take them: a
    folder's own scenario files (``*.yaml``, ``*.yml``; not its subfolders'), sorted; else ``name`` itself (an
    id or a file, for :func:`find_scenario`). A folder without scenario files named as a shipped id is that id:
    `v2x run fcw --out .` makes ./fcw, and the same command again must not read that folder (a claims review).
    An empty list: a folder without scenario files."""
    folder = Path(name)
    if not folder.is_dir():
        return [name]
    files = sorted(map(str, [*folder.glob("*.yaml"), *folder.glob("*.yml")]))
    return files if files or not is_shipped_id(name) else [name]


def catalogue() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.yaml"))
