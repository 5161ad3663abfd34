"""Tensors, storages and numpy values of an official pickle, rebuilt from data (never by the file's code).

A tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`; its storage is
`torch.storage._load_from_bytes(bytes)`, the bytes being a legacy `torch.save` stream: pickled magic
number, protocol 1001, sys_info, then a pickle whose persistent ids are `('storage',
<torch[.cuda].XStorage>, key, location, numel, view_metadata)`, the list of keys, and per key an int64
element count followed by the raw data. A second restricted unpickler reads that stream; its only
allowed globals are the storage type names. Every size, stride and offset is checked against the
storage before a view is made.
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import torch

from core.errors import CheckpointError

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
    if not isinstance(value, (tuple, list, torch.Size)) or not all(isinstance(v, int) for v in value):
        raise CheckpointError(f"corrupt tensor record: {what} is not a tuple of integers")
    return tuple(int(v) for v in value)


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    """A tensor viewing `storage` (torch._utils._rebuild_tensor_v2); hooks and grad flags are dropped."""
    if not isinstance(storage, _Storage):
        raise CheckpointError("corrupt tensor record: its storage is not raw tensor data")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise CheckpointError("corrupt tensor record: invalid storage offset")
    size_t = _as_int_tuple(size, "size")
    stride_t = _as_int_tuple(stride, "stride")
    if len(size_t) != len(stride_t) or any(s < 0 for s in size_t) or any(s < 0 for s in stride_t):
        raise CheckpointError("corrupt tensor record: size and stride do not match")
    numel = storage.flat.numel()
    if all(s > 0 for s in size_t):
        last = storage_offset + sum((s - 1) * st for s, st in zip(size_t, stride_t))
        if last >= numel:
            raise CheckpointError(f"corrupt tensor record: a {list(size_t)} tensor reads past its storage "
                                  f"({numel} elements)")
    elif storage_offset > numel:
        raise CheckpointError("corrupt tensor record: storage offset past the end of its storage")
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


class _HeaderUnpickler(pickle.Unpickler):
    """The small header objects of a legacy stream: plain data only."""

    def find_class(self, module: str, name: str) -> Any:
        raise CheckpointError(f"refused: this file asks to run {module}.{name} inside tensor data; nothing was run")

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError("refused: unexpected persistent id inside tensor data")


class _StorageUnpickler(_HeaderUnpickler):
    """The storage pickle of a legacy stream: only storage type names and ('storage', ...) ids."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self.records: dict[str, tuple[_StorageType, int]] = {}
        self.views: list[tuple[str, str, int, int]] = []

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
        view_key, offset, view_size = view
        return ("view", key, int(offset), int(view_size))


def _load_from_bytes(data: Any) -> _Storage:
    """Parse a legacy `torch.save` stream holding one storage (torch.storage._load_from_bytes)."""
    if not isinstance(data, (bytes, bytearray)):
        raise CheckpointError("corrupt tensor data: storage bytes expected")
    f = io.BytesIO(data)
    try:
        magic = _HeaderUnpickler(f).load()
        protocol = _HeaderUnpickler(f).load()
        sys_info = _HeaderUnpickler(f).load()
        if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL:
            raise CheckpointError("corrupt tensor data: not a torch storage stream (bad magic or protocol)")
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise CheckpointError("unsupported tensor data: written on a big-endian machine")
        unpickler = _StorageUnpickler(f)
        result = unpickler.load()
        keys = _HeaderUnpickler(f).load()
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise CheckpointError("corrupt tensor data: invalid storage key list")
        flats: dict[str, torch.Tensor] = {}
        for key in keys:
            if key not in unpickler.records:
                raise CheckpointError("corrupt tensor data: data for an unknown storage")
            storage_type, numel = unpickler.records[key]
            (count,) = struct.unpack("<q", f.read(8))
            elsize = torch.empty((), dtype=storage_type.dtype).element_size()
            if count != numel or count < 0 or count * elsize > len(data) - f.tell():
                raise CheckpointError("corrupt tensor data: storage size does not match its data (truncated?)")
            raw = bytearray(count * elsize)  # writable, so the tensors may be used freely
            f.readinto(raw)
            flats[key] = (torch.frombuffer(raw, dtype=storage_type.dtype) if count
                          else torch.empty(0, dtype=storage_type.dtype))
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError, IndexError, KeyError,
            RuntimeError, MemoryError) as e:
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


# ----------------------------------------------------------------------------- numpy and builtins

_NP_RECONSTRUCT = np.ndarray(0).__reduce__()[0]  # numpy's own `_reconstruct`, whatever its module path
_NP_SCALAR = np.float64(0).__reduce__()[0]


def _np_reconstruct(cls: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    if cls is not _NDARRAY:
        raise CheckpointError("refused: this file rebuilds a numpy array of an unexpected class")
    return _NP_RECONSTRUCT(np.ndarray, shape, dtype_code)


def _np_dtype(obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if not isinstance(obj, str):
        raise CheckpointError("refused: unexpected numpy dtype description")
    dtype = np.dtype(obj, bool(align), bool(copy))
    if dtype.hasobject:
        raise CheckpointError("refused: numpy arrays of Python objects are not read")
    return dtype


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise CheckpointError("refused: unexpected numpy scalar")
    return _NP_SCALAR(dtype, data)


def _np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(buf, (bytes, bytearray)):
        raise CheckpointError("refused: unexpected numpy buffer")
    return np.frombuffer(buf, dtype=dtype).reshape(_as_int_tuple(shape, "shape"), order=order).copy()

