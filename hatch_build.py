"""Hatch build hook: generate v2x/wire/*_pb2.py (and mypy stubs) from proto/ with grpcio-tools.

Runs for wheels, sdists and editable installs, so the generated code is never edited by hand and never
committed. After changing a .proto file, run ``pip install -e .`` again (or ``python hatch_build.py``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # running as a script outside a build
    BuildHookInterface = object  # type: ignore[assignment,misc]


def generate(root: Path) -> list[Path]:
    from grpc_tools import protoc  # type: ignore[import-untyped]

    proto_root = root / "proto"
    sources = sorted(proto_root.rglob("*.proto"))
    if not sources:
        raise RuntimeError(f"no .proto files under {proto_root}")
    include = Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{proto_root}", f"-I{include}", f"--python_out={root}"]
    plugin = shutil.which("protoc-gen-mypy") or str(Path(sys.executable).parent / "protoc-gen-mypy")
    if Path(plugin).exists():
        args += [f"--plugin=protoc-gen-mypy={plugin}", f"--mypy_out={root}"]
    args += [str(s.relative_to(proto_root)) for s in sources]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    return sorted((root / "v2x" / "wire").glob("*_pb2.py*"))


class ProtoBuildHook(BuildHookInterface):  # type: ignore[misc,valid-type]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        generate(Path(self.root))


if __name__ == "__main__":
    for path in generate(Path(__file__).resolve().parent):
        print(path)
