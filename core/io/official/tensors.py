"""Tensors, storages and numpy values of an official pickle, rebuilt from data (never by the file's code).

A tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`; its storage is
`torch.storage._load_from_bytes(bytes)`, the bytes being a legacy `torch.save` stream: pickled magic
number, protocol 1001, sys_info, then a pickle whose persistent ids are `('storage',
<torch[.cuda].XStorage>, key, location, numel, view_metadata)`, the list of keys, and per key an int64
element count followed by the raw data. Those small pickles are read by the same bounded machine as
the snapshot; the only names they may use are the storage types. Every size, stride and offset is
checked against the storage before a view is made, and a view may not address more elements than its
storage holds (a zero or overlapping stride could otherwise turn 4 stored bytes into a terabyte the
first time the tensor is copied).

numpy values are rebuilt only in the forms numpy itself pickles: `_reconstruct(ndarray, (0,), b'b')`
followed by a state of (version, shape, dtype, fortran order, raw bytes) whose byte count must match;
`dtype(code, align, copy)` for plain numeric / bytes / text codes, with a state that may only choose
the byte order; `scalar(dtype, bytes)`. Python objects inside numpy values are refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.errors import CheckpointError
from core.io.official.machine import Machine

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization MAGIC_NUMBER of legacy streams
_LEGACY_PROTOCOL = 1001


class _Marker:
    """A name that may only appear as an argument of another allowed handler (never called)."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"<{self.label}>"


_NDARRAY = _Marker("numpy.ndarray")
_TENSOR_TYPE = _Marker("torch.Tensor")
_PARAMETER_TYPE = _Marker("torch.nn.Parameter")

# ----------------------------------------------------------------------------- storages and tensors

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128,
}
_TORCH_DTYPES = {
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
    "complex64", "complex128", "double", "float", "half", "long", "int", "short",
}


@dataclass(frozen=True)
class _StorageType:
    name: str
    dtype: torch.dtype


class _Storage:
    """A typed storage read from the file: a flat CPU tensor of `numel` elements."""

    def __init__(self, flat: torch.Tensor) -> None:
        self.flat = flat  # [numel]


def _as_int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list, torch.Size)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise CheckpointError(f"corrupt tensor record: {what} is not a tuple of integers")
    return tuple(int(v) for v in value)


def _check_extent(shape: tuple[int, ...], elements: int, what: str) -> None:
    """An empty value may not carry huge dimensions: (10**12, 0) holds nothing, but its `tolist()` is 10**12 lists."""
    if math.prod(d for d in shape if d) > max(elements, 4096):
        raise CheckpointError(f"refused: a {what} of shape {list(shape)} with {elements:,} elements")


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    """A tensor viewing `storage` (torch._utils._rebuild_tensor_v2); hooks and grad flags are dropped."""
    if not isinstance(storage, _Storage):
        raise CheckpointError("corrupt tensor record: its storage is not raw tensor data")
    if not isinstance(storage_offset, int) or isinstance(storage_offset, bool) or storage_offset < 0:
        raise CheckpointError("corrupt tensor record: invalid storage offset")
    size_t = _as_int_tuple(size, "size")
    stride_t = _as_int_tuple(stride, "stride")
    if len(size_t) != len(stride_t) or any(s < 0 for s in size_t) or any(s < 0 for s in stride_t):
        raise CheckpointError("corrupt tensor record: size and stride do not match")
    numel = storage.flat.numel()
    count = math.prod(size_t)
    if count == 0:
        _check_extent(size_t, 0, "tensor")
    if count > 0:
        last = storage_offset + sum((s - 1) * st for s, st in zip(size_t, stride_t))
        if last >= numel:
            raise CheckpointError(f"corrupt tensor record: a {list(size_t)} tensor reads past its storage "
                                  f"({numel} elements)")
    elif storage_offset > numel:
        raise CheckpointError("corrupt tensor record: storage offset past the end of its storage")
    if count > max(numel, 1):
        # A saved parameter or buffer never views more elements than its storage holds; a zero or
        # overlapping stride that does would become that many elements when the tensor is copied.
        raise CheckpointError(f"refused: a {list(size_t)} tensor views {count:,} elements of a storage that "
                              f"holds {numel:,} (zero or overlapping strides); no checkpoint tensor does that")
    return storage.flat.as_strided(size_t, stride_t, storage_offset)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> torch.Tensor:
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None,
                       state: Any = None) -> torch.Tensor:
    """A parameter is read as its plain tensor (requires_grad, hooks and Python state are dropped)."""
    if not isinstance(data, torch.Tensor):
        raise CheckpointError("corrupt parameter record: its data is not a tensor")
    return data


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> torch.Tensor:
    """torch._tensor._rebuild_from_type_v2, restricted to plain tensors and parameters."""
    if func not in (_rebuild_tensor_v2, _rebuild_parameter) or new_type not in (_TENSOR_TYPE, _PARAMETER_TYPE):
        raise CheckpointError("refused: this file rebuilds a tensor through an unexpected function or type")
    if not isinstance(args, tuple):
        raise CheckpointError("corrupt tensor record")
    return func(*args)


class _HeaderMachine(Machine):
    """The small header objects of a legacy stream: plain data only."""

    def find_class(self, module: str, name: str) -> Any:
        raise CheckpointError(f"refused: this file asks to run {module}.{name} inside tensor data; nothing was run")

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError("refused: unexpected persistent id inside tensor data")


class _StorageMachine(_HeaderMachine):
    """The storage pickle of a legacy stream: only storage type names and ('storage', ...) ids."""

    def __init__(self, data: bytes, start: int) -> None:
        super().__init__(data, start, source="tensor data")
        self.records: dict[str, tuple[_StorageType, int]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:
            return _StorageType(f"{module}.{name}", _STORAGE_DTYPES[name])
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise CheckpointError("refused: tensor data holds something other than storages (e.g. pickled code)")
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not isinstance(numel, int):
            raise CheckpointError("corrupt tensor data: invalid storage record")
        self.records[key] = (storage_type, numel)
        if view is None:
            return ("root", key)
        if not (isinstance(view, tuple) and len(view) == 3 and all(isinstance(v, int) for v in view[1:])):
            raise CheckpointError("corrupt tensor data: invalid storage view")
        _view_key, offset, view_size = view
        return ("view", key, int(offset), int(view_size))


def _load_from_bytes(data: Any) -> _Storage:
    """Parse a legacy `torch.save` stream holding one storage (torch.storage._load_from_bytes)."""
    if not isinstance(data, (bytes, bytearray)):
        raise CheckpointError("corrupt tensor data: storage bytes expected")
    data = bytes(data)
    try:
        magic, pos = _HeaderMachine(data, 0, source="tensor data").load()
        protocol, pos = _HeaderMachine(data, pos, source="tensor data").load()
        sys_info, pos = _HeaderMachine(data, pos, source="tensor data").load()
        if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL:
            raise CheckpointError("corrupt tensor data: not a torch storage stream (bad magic or protocol)")
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise CheckpointError("unsupported tensor data: written on a big-endian machine")
        machine = _StorageMachine(data, pos)
        result, pos = machine.load()
        keys, pos = _HeaderMachine(data, pos, source="tensor data").load()
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise CheckpointError("corrupt tensor data: invalid storage key list")
        flats: dict[str, torch.Tensor] = {}
        for key in keys:
            if key not in machine.records:
                raise CheckpointError("corrupt tensor data: data for an unknown storage")
            storage_type, numel = machine.records[key]
            if pos + 8 > len(data):
                raise CheckpointError("corrupt tensor data: storage size does not match its data (truncated?)")
            count = int.from_bytes(data[pos:pos + 8], "little", signed=True)
            pos += 8
            elsize = torch.empty((), dtype=storage_type.dtype).element_size()
            if count != numel or count < 0 or count * elsize > len(data) - pos:
                raise CheckpointError("corrupt tensor data: storage size does not match its data (truncated?)")
            raw = bytearray(memoryview(data)[pos:pos + count * elsize])  # one copy, writable for torch
            pos += count * elsize
            flats[key] = (torch.frombuffer(raw, dtype=storage_type.dtype) if count
                          else torch.empty(0, dtype=storage_type.dtype))
    except CheckpointError:
        raise
    except (EOFError, ValueError, TypeError, IndexError, KeyError, RuntimeError, MemoryError,
            UnicodeDecodeError, OverflowError) as e:
        raise CheckpointError(f"corrupt tensor data in the file ({type(e).__name__}: {e})") from None
    if not (isinstance(result, tuple) and result and result[0] in ("root", "view") and result[1] in flats):
        raise CheckpointError("corrupt tensor data: the stream does not hold a storage")
    flat = flats[result[1]]
    if result[0] == "view":
        _, _, offset, view_size = result
        if offset < 0 or view_size < 0 or offset + view_size > flat.numel():
            raise CheckpointError("corrupt tensor data: storage view out of bounds")
        flat = flat[offset:offset + view_size]
    return _Storage(flat)


# ----------------------------------------------------------------------------- numpy

_NP_RECONSTRUCT = np.ndarray(0).__reduce__()[0]  # numpy's own `_reconstruct`, whatever its module path
_NP_SCALAR = np.float64(0).__reduce__()[0]
_NP_KINDS = "biufcSU"  # bool, integers, floats, complex, bytes, text: fixed-size values, no Python objects


def _check_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, np.dtype):
        raise CheckpointError("refused: unexpected numpy dtype description")
    if dtype.hasobject:
        raise CheckpointError("refused: numpy arrays of Python objects are not read")
    if dtype.kind not in _NP_KINDS or dtype.fields is not None or dtype.subdtype is not None or not dtype.itemsize:
        raise CheckpointError(f"refused: numpy dtype {dtype.str!r} is not read (only plain numbers and text)")
    return dtype


def _np_reconstruct(cls: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    """numpy's `_reconstruct`: an empty array whose contents arrive with BUILD (`_np_array_setstate`)."""
    if cls is not _NDARRAY:
        raise CheckpointError("refused: this file rebuilds a numpy array of an unexpected class")
    if shape != (0,) or dtype_code != b"b":  # what `ndarray.__reduce__` always writes
        raise CheckpointError("refused: unexpected numpy array record")
    return _NP_RECONSTRUCT(np.ndarray, (0,), b"b")


def _np_array_setstate(array: np.ndarray, state: Any) -> None:
    """ndarray.__setstate__ with (version, shape, dtype, fortran, raw bytes), all checked first."""
    if not (isinstance(state, tuple) and len(state) in (4, 5)):
        raise CheckpointError("corrupt numpy array record")
    version, shape, dtype, fortran, raw = state if len(state) == 5 else (1, *state)
    dtype = _check_dtype(dtype)
    shape = _as_int_tuple(shape, "numpy shape")
    if not isinstance(version, int) or not isinstance(fortran, bool) or not isinstance(raw, (bytes, bytearray)):
        raise CheckpointError("corrupt numpy array record")
    if any(s < 0 for s in shape) or math.prod(shape) * dtype.itemsize != len(raw):
        raise CheckpointError(f"corrupt numpy array record: shape {list(shape)} does not match its "
                              f"{len(raw)} bytes")
    _check_extent(shape, math.prod(shape), "numpy array")
    array.__setstate__((version, shape, dtype, fortran, bytes(raw)))


def _np_dtype(obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """numpy.dtype(code): always a new dtype object (never numpy's shared one), so BUILD can only touch it."""
    if not isinstance(obj, str) or len(obj) > 16:
        raise CheckpointError("refused: unexpected numpy dtype description")
    try:
        dtype = np.dtype(obj, bool(align), True)
    except TypeError:
        raise CheckpointError(f"refused: unknown numpy dtype {obj!r}") from None
    return _check_dtype(dtype)


def _np_dtype_setstate(dtype: np.dtype, state: Any) -> None:
    """dtype.__setstate__: the state may only choose the byte order; everything else must be numpy's own."""
    own = dtype.__reduce__()[2]
    if not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4) and state[1] in "<>|="
            and len(state[1]) == 1 and tuple(state[2:8]) == tuple(own[2:8])
            and (len(state) == 8 or state[8] is None)):
        raise CheckpointError("refused: unexpected numpy dtype state (only the byte order may be set)")
    dtype.__setstate__((own[0], state[1], *own[2:]))
    _check_dtype(dtype)


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    dtype = _check_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise CheckpointError("refused: unexpected numpy scalar")
    return _NP_SCALAR(dtype, data)


def _np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    dtype = _check_dtype(dtype)
    shape = _as_int_tuple(shape, "shape")
    if not isinstance(buf, (bytes, bytearray)) or order not in ("C", "F") or any(s < 0 for s in shape) \
            or math.prod(shape) * dtype.itemsize != len(buf):
        raise CheckpointError("refused: unexpected numpy buffer")
    _check_extent(shape, math.prod(shape), "numpy array")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order).copy()
