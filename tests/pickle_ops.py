"""Raw pickle opcodes for writing hostile or hand-made pickles in tests (what no pickler would write)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

PROTO2, PROTO4 = b"\x80\x02", b"\x80\x04"
MARK, TUPLE, TUPLE1, EMPTY_TUPLE, REDUCE, STOP = b"(", b"t", b"\x85", b")", b"R", b"."
EMPTY_DICT, SETITEM, NONE, NEWFALSE, BINPERSID = b"}", b"s", b"N", b"\x89", b"Q"


def op_global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def op_stack_global(module: str, name: str) -> bytes:
    return op_str(module) + op_str(name) + b"\x93"


def op_str(s: str) -> bytes:
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def op_bytes(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def op_int(i: int) -> bytes:
    return b"J" + struct.pack("<i", i)


def op_tuple(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def op_call(callable_ops: bytes, *args: bytes) -> bytes:
    return callable_ops + op_tuple(*args) + REDUCE


def snapshot(value_ops: bytes, proto: bytes = PROTO2) -> bytes:
    """A pickle of {'G_ema': <value>}."""
    return proto + EMPTY_DICT + op_str("G_ema") + value_ops + SETITEM + STOP


def legacy_storage_stream(values: list[float], storage_pickle: bytes | None = None, count: int | None = None) -> bytes:
    """A legacy `torch.save` stream of one FloatStorage, written by hand (magic, protocol, sys_info, ...)."""
    header = (pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
              + pickle.dumps({"protocol_version": 1001, "little_endian": True,
                              "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))
    if storage_pickle is None:
        storage_pickle = PROTO2 + op_tuple(op_str("storage"), op_global("torch", "FloatStorage"), op_str("k0"),
                                           op_str("cuda:0"), op_int(len(values)), NONE) + BINPERSID + STOP
    data = struct.pack(f"<{len(values)}f", *values)
    n = len(values) if count is None else count
    return header + storage_pickle + pickle.dumps(["k0"], protocol=2) + struct.pack("<q", n) + data


def tensor_ops(stream: bytes, size: tuple[int, ...], stride: tuple[int, ...], offset: int = 0) -> bytes:
    storage = op_call(op_global("torch.storage", "_load_from_bytes"), op_bytes(stream))
    hooks = op_global("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE
    return op_call(op_global("torch._utils", "_rebuild_tensor_v2"), storage, op_int(offset),
                   op_tuple(*map(op_int, size)), op_tuple(*map(op_int, stride)), NEWFALSE, hooks)


def write(tmp_path: Path, data: bytes, name: str = "evil.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path
