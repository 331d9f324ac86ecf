"""Code tables shared by several message families."""

from __future__ import annotations

from v2x.wire import testbed_pb2

APP_BY_NAME = {
    "fcw": testbed_pb2.APP_FCW,
    "icw": testbed_pb2.APP_ICW,
    "rlvw": testbed_pb2.APP_RLVW,
    "glosa": testbed_pb2.APP_GLOSA,
    "vrucw": testbed_pb2.APP_VRUCW,
    "hlw": testbed_pb2.APP_HLW,
    "ebw": testbed_pb2.APP_EBW,
    "avw": testbed_pb2.APP_AVW,
    "clw": testbed_pb2.APP_CLW,
    "ivs": testbed_pb2.APP_IVS,
    "slw": testbed_pb2.APP_SLW,
    "evw": testbed_pb2.APP_EVW,
}
APP_NAME = {v: k for k, v in APP_BY_NAME.items()}
