"""docs/PROTOCOL.md "Generated code", in C: the recipes that make a local copy of ``proto/`` for protobuf-c (proto3
``optional`` as the one-field oneof protoc makes of it) and for nanopb (the fields named after C keywords
renamed), run as the document writes them. An outside C stack met both at step one: protobuf-c refuses
``Advisory.trigger_sent_at_s`` and nanopb writes ``int32_t long;``. The copies must be wire-identical to
``proto/`` (every field's number, type and cardinality; the optional field's presence kept), and, where the
generators are installed, they must take them and the C they write must compile."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

REPO = Path(__file__).resolve().parents[1]
FILES = ("common", "day1", "day2", "frame", "security", "testbed")


def _recipe(copy: str) -> list[str]:
    """The lines of the "In C" code block that makes ``copy`` (proto-c, proto-nanopb)."""
    doc = (REPO / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Generated code: which file holds what") :]
    section = section[: section.index("\n## ", 10)]
    blocks = [b for b in re.findall(r"```sh\n(.*?)```", section, re.S) if f"cp -r proto {copy} " in b]
    assert len(blocks) == 1, f"one recipe for {copy} in the doc"
    lines: list[str] = blocks[0].strip().splitlines()
    return lines


def _run(line: str, cwd: Path) -> None:
    done = subprocess.run(["bash", "-ec", line], check=False, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"


def _copied(tmp_path: Path, copy: str) -> list[str]:
    """``proto/`` in ``tmp_path`` with the recipe's first line (the copy) run there; the other lines."""
    shutil.copytree(REPO / "proto", tmp_path / "proto")
    first, *rest = _recipe(copy)
    _run(first, tmp_path)
    return rest


def _descriptors(root: Path) -> descriptor_pb2.FileDescriptorSet:
    protoc = shutil.which("protoc")
    if protoc is None:
        pytest.skip("protoc is not on PATH")
    out = root.parent / f"{root.name}.pb"
    files = [f"v2x/wire/{f}.proto" for f in FILES]
    subprocess.run([protoc, f"-I{root}", f"--descriptor_set_out={out}", *files], check=True, timeout=120)
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _fields(fds: descriptor_pb2.FileDescriptorSet) -> dict[tuple[str, int], tuple[str, int, int, str, bool]]:
    """Every field by (message's full name, number): (name, type, label, type name, packed) (the wire's)."""
    out: dict[tuple[str, int], tuple[str, int, int, str, bool]] = {}

    def walk(prefix: str, messages: list[descriptor_pb2.DescriptorProto]) -> None:
        for m in messages:
            name = f"{prefix}.{m.name}"
            for f in m.field:
                packed = f.options.packed if f.options.HasField("packed") else True
                out[(name, f.number)] = (f.name, int(f.type), int(f.label), f.type_name, packed)
            walk(name, list(m.nested_type))

    for file in fds.file:
        walk(file.package, list(file.message_type))
    return out


def _advisory(fds: descriptor_pb2.FileDescriptorSet) -> type[Message]:
    pool = descriptor_pool.DescriptorPool()
    for file in fds.file:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("v2x.wire.Advisory"))


def test_the_protobuf_c_copy_is_wire_identical_and_keeps_trigger_sent_at_s_presence(tmp_path: Path) -> None:
    _copied(tmp_path, "proto-c")
    text = {d: {f: (tmp_path / d / "v2x/wire" / f"{f}.proto").read_text() for f in FILES} for d in ("proto", "proto-c")}
    changed = [f for f in FILES if text["proto"][f] != text["proto-c"][f]]
    assert changed == ["testbed"]
    assert "oneof _trigger_sent_at_s { double trigger_sent_at_s = 12; }" in text["proto-c"]["testbed"]
    assert "optional " not in text["proto-c"]["testbed"]
    shipped, copy = _descriptors(tmp_path / "proto"), _descriptors(tmp_path / "proto-c")
    assert _fields(copy) == _fields(shipped)
    # A 0.0 is sent (the presence), and the shipped files read it back as there.
    adv = _advisory(copy)(trigger_sent_at_s=0.0)
    assert adv.HasField("trigger_sent_at_s")
    back = _advisory(shipped).FromString(adv.SerializeToString())
    assert back.HasField("trigger_sent_at_s") and back.ListFields()[0][1] == 0.0
    assert not _advisory(shipped).FromString(_advisory(copy)().SerializeToString()).HasField("trigger_sent_at_s")


def test_the_nanopb_copy_renames_only_the_c_keywords(tmp_path: Path) -> None:
    _copied(tmp_path, "proto-nanopb")
    shipped, copy = _fields(_descriptors(tmp_path / "proto")), _fields(_descriptors(tmp_path / "proto-nanopb"))
    assert shipped.keys() == copy.keys()
    renamed = {k: (shipped[k][0], copy[k][0]) for k in shipped if shipped[k][0] != copy[k][0]}
    assert renamed == {
        ("v2x.wire.AccelerationSet4Way", 1): ("long", "long_"),
        ("v2x.wire.Control", 23): ("signed", "signed_"),
    }
    assert {k: v[1:] for k, v in copy.items()} == {k: v[1:] for k, v in shipped.items()}


def _compiles(tmp_path: Path, sources: list[Path], *include: str) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return
    for c in sources:
        done = subprocess.run(
            [cc, "-c", "-Wall", "-Werror", f"-I{tmp_path / 'gen'}", *include, str(c), "-o", str(c.with_suffix(".o"))],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{c.name}: {done.stderr}"


def test_protoc_c_takes_the_copy_and_its_c_compiles(tmp_path: Path) -> None:
    if shutil.which("protoc-c") is None:
        pytest.skip("protoc-c (protobuf-c-compiler) is not on PATH")
    for line in _copied(tmp_path, "proto-c"):
        _run(line, tmp_path)
    header = (tmp_path / "gen/v2x/wire/testbed.pb-c.h").read_text()
    # The names the doc gives.
    for name in (
        "V2X__WIRE__ADVISORY___TRIGGER_SENT_AT_S_TRIGGER_SENT_AT_S",
        "V2X__WIRE__ADVISORY___TRIGGER_SENT_AT_S__NOT_SET",
        "_trigger_sent_at_s_case;",
        "size_t n_rejected;",
        "V2x__Wire__Ack__RejectedEntry **rejected;",
        "protobuf_c_boolean signed_;",
        "size_t n_dest_ids;",
        "V2X__WIRE__ACK__INIT",
        "v2x__wire__tick_input__unpack",
        "v2x__wire__ack__get_packed_size",
    ):
        assert name in header, name
    assert "int32_t long_;" in (tmp_path / "gen/v2x/wire/common.pb-c.h").read_text()
    frame = (tmp_path / "gen/v2x/wire/frame.pb-c.h").read_text()
    assert "V2X__WIRE__MESSAGE_FRAME__MSG_BSM" in frame and "msg_case;" in frame and "V2x__Wire__BSM *bsm;" in frame
    if Path("/usr/include/protobuf-c/protobuf-c.h").exists():
        _compiles(tmp_path, sorted((tmp_path / "gen/v2x/wire").glob("*.pb-c.c")))


def test_nanopb_takes_the_renamed_copy_and_its_c_compiles(tmp_path: Path) -> None:
    protoc = shutil.which("protoc")
    if protoc is None or shutil.which("protoc-gen-nanopb") is None:
        pytest.skip("protoc with nanopb's protoc-gen-nanopb is not on PATH")
    for line in _copied(tmp_path, "proto-nanopb"):
        _run(line, tmp_path)
    header = (tmp_path / "gen/v2x/wire/testbed.pb.h").read_text()
    assert "bool has_trigger_sent_at_s;" in header and "bool signed_;" in header
    pb = next((d for d in ("/usr/include", "/usr/include/nanopb") if Path(d, "pb.h").exists()), None)
    if pb is not None:
        _compiles(tmp_path, sorted((tmp_path / "gen/v2x/wire").glob("*.pb.c")), f"-I{pb}")
