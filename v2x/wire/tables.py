"""Code tables shared by several message families."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from v2x.wire import testbed_pb2


def app_name_of(enum_name: str) -> str:
    """The app name of a ``testbed_pb2.Application`` value name: "APP_FCW" -> "fcw"."""
    return enum_name.removeprefix("APP_").lower()


#: Application code -> name ("fcw"), for every value of the proto enum ``Application`` but APP_UNSPECIFIED.
APP_NAME: Mapping[int, str] = MappingProxyType(
    {
        code: app_name_of(enum_name)
        for enum_name, code in testbed_pb2.Application.items()
        if code != testbed_pb2.APP_UNSPECIFIED
    }
)
APP_BY_NAME: Mapping[str, testbed_pb2.Application.ValueType] = MappingProxyType(
    {
        app_name_of(enum_name): code
        for enum_name, code in testbed_pb2.Application.items()
        if code != testbed_pb2.APP_UNSPECIFIED
    }
)

__all__ = ["APP_BY_NAME", "APP_NAME", "app_name_of"]
