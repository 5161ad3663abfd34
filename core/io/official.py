"""Open official StyleGAN-XL snapshots (`.pkl`) safely: nothing from the file ever runs.

Why this file exists: an official snapshot is a pickle (written with `dill`) whose generator
modules carry their own Python source (`torch_utils.persistence`); the official loader `exec`s
that source, and any pickle may name any callable for the loader to run (`os.system`, `eval`...).
Here a restricted `pickle.Unpickler` resolves only an explicit allow-list of names, each to a
harmless handler; every other name is refused before anything is called:

- `torch_utils.persistence._reconstruct_persistent_obj` -> `PersistentRecord(class_name, module_name,
  state)`; `module_src` is dropped unread.
- `torch._utils._rebuild_tensor(_v2)`, `_rebuild_parameter(_with_state)`, `torch._tensor._rebuild_from_type_v2`
  -> a bounds-checked CPU `torch.Tensor` (grad flags and hooks dropped).
- `torch.storage._load_from_bytes` -> raw storage, parsed by hand from the legacy `torch.save` stream.
- `torch.<dtype>`, `torch.Size`, `collections.OrderedDict`, builtins `set frozenset dict list tuple
  bytearray complex slice` -> the value.
- numpy `_reconstruct`, `ndarray`, `dtype`, `scalar`, `_frombuffer` (old `numpy.core` or new `numpy._core`
  paths), `_codecs.encode` -> numpy values / bytes; arrays of Python objects are refused.
- `copyreg._reconstructor` -> an empty stub (only for stub classes); `dnnlib.util.EasyDict` -> a dict.
- classes under `torch.nn.modules.`, `torch.nn.utils.`, `timm.`, `pg_modules.`, `feature_networks.`,
  plus `functools.partial`, `torch.device` and dill's `_create_*` / `_load_type` / `_get_attr` /
  `_import_module` helpers (they appear in D) -> `InertObject` stubs: they accept any arguments and
  store BUILD state, and never run anything. An `Embedding` stub keeps its `_parameters['weight']`.

The storage bytes are a legacy `torch.save` stream: pickled magic number, protocol 1001, sys_info,
then a pickle whose persistent ids are `('storage', <torch[.cuda].XStorage>, key, location, numel,
view_metadata)`, the list of keys, and per key an int64 element count followed by the raw data. A
second restricted unpickler reads it; its only allowed globals are the storage type names.

Official G_ema tensor names -> ours (`core.networks.generator.Generator.state_dict()`):

| official name                                    | ours                              | how          |
|--------------------------------------------------|-----------------------------------|--------------|
| mapping.embed.weight [1000, 320]                 | mapping.embed.weight [c_dim, 320] | rows < c_dim |
| mapping.embed_proj.*, mapping.fc{i}.*, mapping.w_avg | same name                     | copied       |
| synthesis.input.{weight, affine.*, transform, freqs, phases} | same name             | copied       |
| synthesis.L{i}_{size}_{ch}.{weight, bias, affine.*, magnitude_ema} | same name       | copied       |
| synthesis.L{i}_{size}_{ch}.{up_filter, down_filter} | non-persistent buffers         | verified     |

"rows < c_dim": the official mapping reads row `argmax(c)`, always < c_dim, so the other rows of its
1000-row table are never used (an unconditional G never reads the table). "verified": the FIR
filters follow from the config; they must equal ours within 1e-6 (None = identity on both sides).

Official attributes -> `GeneratorConfig`: `z_dim, c_dim, w_dim` -> MappingConfig; `mapping.num_layers`,
`mapping.w_avg_beta`, `mapping.fc0.bias_gain` (= lr_multiplier), embed width -> MappingConfig;
`synthesis.{channel_base, channel_max, num_critical, first_cutoff, first_stopband, last_stopband_rel,
margin_size, output_scale, num_fp16_res, conv_kernel, use_radial_filters}` and the layers'
`filter_size, lrelu_upsampling, conv_clamp, magnitude_ema_beta` -> SynthesisConfig. A
`SuperresGenerator` (paper Sec. 4.2) keeps the stem minus its critically sampled layers, so the
stem's `num_layers` = kept stem layers (before the one gap in the layer indices) + num_critical;
the stem's `sampling_rates`, still stored on the synthesis, confirm it and give the stem resolution.
Later stages number their layers by count, so no gap marks them: the growth stages (up_factor,
head_layers) are found by a search that checks each candidate stage's layers against the official
names and stored specifications (the last stage must match `up_factor` and `head_layer_names`).
After building, every layer's stored specification (channels, sizes, rates, cutoffs, padding...)
is compared with ours, so an architecture we cannot reproduce fails loudly instead of rendering wrong.
"""

from __future__ import annotations

import _compat_pickle
import copy
import io
import math
import pickle
import re
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from core.errors import CheckpointError
from core.networks.generator import Generator, GeneratorConfig
from core.networks.layers import FullyConnectedLayer
from core.networks.mapping import MappingConfig
from core.networks.synthesis import GrowthStage, SynthesisConfig, layer_specs

FILTER_TOLERANCE = 1e-6  # derived FIR filters must equal ours within this (float32 design round-off)
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization MAGIC_NUMBER of legacy streams
_LEGACY_PROTOCOL = 1001

# ----------------------------------------------------------------------------- inert values


@dataclass
class PersistentRecord:
    """A `torch_utils.persistence` module, as data: the class name and its `__dict__` (`state`).

    `module_name` is None: the file records only the module's source text, which is never read.
    """

    class_name: str
    module_name: str | None
    state: dict


class InertObject:
    """Stand-in for an allowed class or helper (torch.nn / timm / pg_modules / dill): records, never runs.

    Pickle may create it (NEWOBJ / REDUCE), give it state (BUILD), items (SETITEMS / APPENDS) or
    call it; all of these only store what they are given.
    """

    module_name = "?"
    class_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> InertObject:
        obj = super().__new__(cls)
        obj.args, obj.kwargs, obj.state, obj.items, obj.list_items = args, kwargs, None, {}, []
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.list_items.append(value)

    def extend(self, values: Any) -> None:
        self.list_items.extend(values)

    def __call__(self, *args: Any, **kwargs: Any) -> InertObject:
        return _inert_call_result(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<inert {self.module_name}.{self.class_name}>"


class _InertCallResult(InertObject):
    module_name = "(call)"
    class_name = "result"


def _inert_call_result(callee: InertObject, args: tuple, kwargs: dict) -> InertObject:
    result = _InertCallResult(*args, **kwargs)
    result.callee = callee
    return result


class _EasyDict(dict):
    """`dnnlib.util.EasyDict` read as a plain dict (its instance state, if any, is merged in)."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)


class _Marker:
    """A name that may only appear as an argument of another allowed handler (never called)."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"<{self.label}>"


_OBJECT_BASE = _Marker("builtins.object")
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


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """`_codecs.encode`, used by protocol-2 pickles to store bytes as latin-1 text."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError("refused: unexpected _codecs.encode call")
    return text.encode("latin1")


def _copyreg_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """copyreg._reconstructor, only to create an empty inert stub (state arrives later via BUILD)."""
    if isinstance(cls, type) and issubclass(cls, InertObject) and base is _OBJECT_BASE and state is None:
        return cls.__new__(cls)
    if cls is _EasyDict and base is dict and isinstance(state, dict):
        return _EasyDict(state)
    raise CheckpointError("refused: this file reconstructs an object of a class outside the allow-list")


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    """torch_utils.persistence._reconstruct_persistent_obj, minus the `exec` of `module_src`."""
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise CheckpointError("corrupt persistent module record (expected a class record)")
    class_name, state = meta.get("class_name"), meta.get("state")
    if not isinstance(class_name, str) or not isinstance(state, dict):
        raise CheckpointError("corrupt persistent module record (no class name or state)")
    return PersistentRecord(class_name=class_name, module_name=None, state=state)


# ----------------------------------------------------------------------------- the restricted unpickler

_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TENSOR_TYPE,
    ("torch._tensor", "Tensor"): _TENSOR_TYPE,
    ("torch.nn.parameter", "Parameter"): _PARAMETER_TYPE,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("torch", "Size"): torch.Size,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _np_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy.core.multiarray", "scalar"): _np_scalar,
    ("numpy._core.multiarray", "scalar"): _np_scalar,
    ("numpy.core.numeric", "_frombuffer"): _np_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _np_frombuffer,
    ("_codecs", "encode"): _codecs_encode,
    ("copyreg", "_reconstructor"): _copyreg_reconstructor,
    ("builtins", "object"): _OBJECT_BASE,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
}
# Classes of the discriminator and its feature networks (and dill's helpers for its closures):
# they become inert stubs, so a file may contain them without anything of theirs being run.
_STUB_MODULE_PREFIXES = ("torch.nn.modules.", "torch.nn.utils.", "timm.", "pg_modules.", "feature_networks.")
_STUB_NAMES = {
    ("functools", "partial"), ("torch", "device"),
    *(("dill._dill", n) for n in ("_create_function", "_create_code", "_create_cell", "_create_namedtuple",
                                  "_create_type", "_load_type", "_get_attr", "_import_module")),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the allow-list above; any other global is refused before it could be called."""

    def __init__(self, file: BinaryIO, source: str) -> None:
        super().__init__(file)
        self.source = source
        self.stub_classes: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 0-2 pickles name Python 2 modules (`__builtin__.set`); translate them as pickle does.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        key = (module, name)
        if key in _ALLOWED:
            return _ALLOWED[key]
        if module == "torch" and name in _TORCH_DTYPES:
            return getattr(torch, name)
        if key in _STUB_NAMES or (module.startswith(_STUB_MODULE_PREFIXES) and name.isidentifier()):
            if key not in self.stub_classes:
                self.stub_classes[key] = type(name, (InertObject,), {"module_name": module, "class_name": name})
            return self.stub_classes[key]
        raise CheckpointError(
            f"refused: this file asks to run {module}.{name}, which a StyleGAN checkpoint never needs; "
            f"nothing was run ({self.source}). The file may be malicious or not an official snapshot.")

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(f"refused: {self.source} holds a persistent reference that only code could resolve")


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no file at {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not an official .pkl snapshot")
    return path


def read_official_pickle(path: str | Path) -> dict:
    """The top-level dict of an official snapshot, with inert records in place of modules."""
    path = _check_path(path)
    with path.open("rb") as f:
        head = f.read(4)
        if not head:
            raise CheckpointError(f"{path} is empty")
        if head[:2] == b"PK":
            raise CheckpointError(f"{path} is a zip archive, not an official .pkl snapshot "
                                  "(a .sgxl checkpoint or a torch.save file?)")
        if head[0] != 0x80:
            raise CheckpointError(f"{path} is not a pickle file (official StyleGAN-XL snapshots are pickles)")
        f.seek(0)
        try:
            data = _RestrictedUnpickler(f, str(path)).load()
        except CheckpointError:
            raise
        except EOFError:
            raise CheckpointError(f"{path} is truncated: the pickle ends early (incomplete download?)") from None
        except OSError as e:
            raise CheckpointError(f"cannot read {path}: {e}") from None
        except pickle.UnpicklingError as e:
            what = "truncated" if "truncated" in str(e) else "corrupt"
            raise CheckpointError(f"{path} is {what} and cannot be read as a snapshot ({e})") from None
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, struct.error, RecursionError,
                UnicodeDecodeError, OverflowError, MemoryError, RuntimeError) as e:
            raise CheckpointError(f"{path} is corrupt and cannot be read as a snapshot "
                                  f"({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not the dict of an official snapshot")
    return data


# ----------------------------------------------------------------------------- the generator as data


@dataclass
class OfficialGenerator:
    """An official generator as plain data (names as in the official `state_dict()`)."""

    class_name: str
    init_kwargs: dict
    tensors: dict[str, torch.Tensor]  # "mapping.fc0.weight", "synthesis.L9_16_1024.up_filter", ...
    attributes: dict[str, Any]  # "synthesis.L0_36_128.in_size", "synthesis.layer_names", "head_layer_names"
    module_classes: dict[str, str] = field(default_factory=dict)  # "" (root), "mapping", "mapping.embed", ...
    parameter_names: set[str] = field(default_factory=set)  # which tensors are parameters (not buffers)
    source: str = ""


def _plain(value: Any) -> Any:
    """Attribute values as plain Python (numpy scalars/arrays -> numbers/lists)."""
    if value is None or isinstance(value, (bool, int, float, str, bytes, torch.Tensor)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value) if type(value) in (list, tuple) else [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(map(str, value))
    if isinstance(value, PersistentRecord):
        return f"<module {value.class_name}>"
    return repr(value)


def _module_state(obj: Any) -> tuple[str, dict] | None:
    if isinstance(obj, PersistentRecord):
        return obj.class_name, obj.state
    if isinstance(obj, InertObject) and isinstance(obj.state, dict) and "_parameters" in obj.state:
        return obj.class_name, obj.state
    return None


def _flatten(obj: Any, prefix: str, og: OfficialGenerator, parents: tuple[int, ...] = ()) -> None:
    found = _module_state(obj)
    if found is None:
        raise CheckpointError(f"{og.source}: '{prefix.rstrip('.') or 'generator'}' is not a module "
                              f"({type(obj).__name__}); the file is not a StyleGAN generator snapshot")
    if id(obj) in parents:
        raise CheckpointError(f"{og.source}: corrupt generator: module '{prefix.rstrip('.')}' contains itself")
    parents = (*parents, id(obj))
    class_name, state = found
    og.module_classes[prefix.rstrip(".")] = class_name
    for group in ("_parameters", "_buffers"):
        entries = state.get(group) or {}
        if not isinstance(entries, dict):
            raise CheckpointError(f"{og.source}: corrupt module '{prefix.rstrip('.')}'")
        for name, tensor in entries.items():
            key = prefix + name
            if tensor is None:
                og.attributes[key] = None
                continue
            if not isinstance(tensor, torch.Tensor):
                raise CheckpointError(f"{og.source}: '{key}' is not a tensor")
            og.tensors[key] = tensor
            if group == "_parameters":
                og.parameter_names.add(key)
    modules = state.get("_modules") or {}
    if not isinstance(modules, dict):
        raise CheckpointError(f"{og.source}: corrupt module '{prefix.rstrip('.')}'")
    for name, sub in modules.items():
        if sub is not None:
            _flatten(sub, f"{prefix}{name}.", og, parents)
    for key, value in state.items():
        if not key.startswith("_") and key != "training":
            og.attributes[prefix + key] = _plain(value)


def official_generator_from_snapshot(data: dict, source: str = "snapshot") -> OfficialGenerator:
    """G_ema (fallback G) of a snapshot dict read by `read_official_pickle`, flattened to names."""
    key = "G_ema" if data.get("G_ema") is not None else "G" if data.get("G") is not None else None
    if key is None:
        keys = ", ".join(map(str, list(data)[:8])) or "none"
        raise CheckpointError(f"{source} holds no generator: it has no 'G_ema' or 'G' entry (keys: {keys})")
    record = data[key]
    if not isinstance(record, PersistentRecord):
        raise CheckpointError(f"{source}: '{key}' is not a StyleGAN generator module")
    og = OfficialGenerator(class_name=record.class_name, init_kwargs=_plain(record.state.get("_init_kwargs") or {}),
                           tensors={}, attributes={}, source=source)
    try:
        _flatten(record, "", og)
    except RecursionError:
        raise CheckpointError(f"{source}: corrupt generator: its attributes nest without end") from None
    og.attributes["_snapshot_key"] = key
    return og


def read_official_generator(path: str | Path) -> OfficialGenerator:
    """The generator (G_ema, else G) of an official snapshot, as names -> tensors and attributes."""
    return official_generator_from_snapshot(read_official_pickle(path), source=str(path))


# ----------------------------------------------------------------------------- configuration

_LAYER_RE = re.compile(r"^L(\d+)_(\d+)_(\d+)$")
_UP_FACTORS = (2, 4, 8, 16)  # official SuperresGenerator accepts these


def _attr(og: OfficialGenerator, key: str, default: Any = KeyError) -> Any:
    if key in og.attributes:
        return og.attributes[key]
    if default is KeyError:
        raise CheckpointError(f"{og.source}: the generator has no '{key}' attribute; not a StyleGAN-XL generator")
    return default


def _unsupported_reason(og: OfficialGenerator) -> str | None:
    """Why this generator cannot be mapped onto ours (None when it can)."""
    if og.class_name not in ("Generator", "SuperresGenerator"):
        return f"generator class '{og.class_name}' is not a StyleGAN-XL Generator or SuperresGenerator"
    if any(name.startswith("synthesis.b4.") for name in og.tensors):
        return ("this is a StyleGAN2 generator (synthesis blocks b4, b8, ...); only StyleGAN-XL "
                "(StyleGAN3-T synthesis) is supported")
    if "synthesis.input.freqs" not in og.tensors:
        return "the synthesis network has no Fourier-feature input; not a StyleGAN3-style generator"
    embed_class = og.module_classes.get("mapping.embed")
    if embed_class != "Embedding":
        z_dim = og.attributes.get("z_dim")
        c_dim = og.attributes.get("c_dim")
        how = ("embeds the class with a fully connected layer (c_dim -> w_dim)" if embed_class
               else "has no class embedding table")
        return (f"this looks like a StyleGAN3 generator (training.networks_stylegan3): its mapping {how}, "
                f"with z_dim {z_dim} and c_dim {c_dim}, whereas StyleGAN-XL uses an Embedding(1000, 320) table, "
                "a 320 -> z_dim projection and z_dim 64; converting StyleGAN3 checkpoints is not supported yet")
    return None


def _layer_segments(names: list[str], source: str) -> list[list[str]]:
    """Layer names split where the index jumps (a SuperresGenerator leaves one gap after the kept stem)."""
    segments: list[list[str]] = []
    prev = None
    for name in names:
        m = _LAYER_RE.match(name)
        if m is None:
            raise CheckpointError(f"{source}: unexpected synthesis layer name '{name}'")
        idx = int(m.group(1))
        if prev is None or idx != prev + 1:
            segments.append([])
        segments[-1].append(name)
        prev = idx
    return segments


def official_to_config(og: OfficialGenerator) -> GeneratorConfig:
    """Our `GeneratorConfig` for an official StyleGAN-XL generator (stem or superres stage)."""
    try:
        return _official_to_config(og)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{og.source}: the generator's attributes are not those of StyleGAN-XL ({e})") from None


def _official_to_config(og: OfficialGenerator) -> GeneratorConfig:
    reason = _unsupported_reason(og)
    if reason:
        raise CheckpointError(f"{og.source}: {reason}")
    c_dim = int(_attr(og, "c_dim"))
    embed = og.tensors.get("mapping.embed.weight")
    if c_dim > 0 and (embed is None or embed.ndim != 2 or embed.shape[0] < c_dim):
        raise CheckpointError(f"{og.source}: the class embedding has fewer rows than the {c_dim} classes")
    mapping = MappingConfig(
        z_dim=int(_attr(og, "z_dim")), c_dim=c_dim, w_dim=int(_attr(og, "w_dim")),
        embed_dim=int(embed.shape[1]) if embed is not None else MappingConfig.embed_dim,
        num_layers=int(_attr(og, "mapping.num_layers")),
        lr_multiplier=float(_attr(og, "mapping.fc0.bias_gain", MappingConfig.lr_multiplier)),
        w_avg_beta=float(_attr(og, "mapping.w_avg_beta")),
    )

    names = list(_attr(og, "synthesis.layer_names"))
    if not names:
        raise CheckpointError(f"{og.source}: the synthesis network has no layers")
    first = f"synthesis.{names[0]}."
    per_layer = {}
    for key in ("filter_size", "lrelu_upsampling", "conv_clamp", "magnitude_ema_beta"):
        values = {repr(og.attributes.get(f"synthesis.{n}.{key}")) for n in names}
        if len(values) != 1:
            raise CheckpointError(f"{og.source}: the layers use different {key} values ({', '.join(sorted(values))});"
                                  " our configuration has one value for all layers")
        per_layer[key] = _attr(og, first + key)
    num_critical = int(_attr(og, "synthesis.num_critical"))
    img_res = int(_attr(og, "img_resolution"))
    base = dict(
        img_channels=int(_attr(og, "img_channels")),
        channel_base=int(_attr(og, "synthesis.channel_base")), channel_max=int(_attr(og, "synthesis.channel_max")),
        num_critical=num_critical, first_cutoff=float(_attr(og, "synthesis.first_cutoff")),
        first_stopband=float(_attr(og, "synthesis.first_stopband")),
        last_stopband_rel=float(_attr(og, "synthesis.last_stopband_rel")),
        margin_size=int(_attr(og, "synthesis.margin_size")), output_scale=float(_attr(og, "synthesis.output_scale")),
        num_fp16_res=int(_attr(og, "synthesis.num_fp16_res")),
        conv_kernel=int(_attr(og, "synthesis.conv_kernel", og.attributes.get(first + "conv_kernel", 3))),
        filter_size=int(per_layer["filter_size"]), lrelu_upsampling=int(per_layer["lrelu_upsampling"]),
        use_radial_filters=bool(_attr(og, "synthesis.use_radial_filters")),
        conv_clamp=None if per_layer["conv_clamp"] is None else float(per_layer["conv_clamp"]),
        magnitude_ema_beta=float(per_layer["magnitude_ema_beta"]),
    )
    if base["conv_clamp"] is not None and float(base["conv_clamp"]).is_integer():
        base["conv_clamp"] = int(base["conv_clamp"])

    segments = _layer_segments(names, og.source)
    if og.class_name == "Generator":
        if len(segments) != 1:
            raise CheckpointError(f"{og.source}: a stem Generator with gaps in its layer indices is not supported")
        synthesis = SynthesisConfig(stem_resolution=img_res, num_layers=len(names) - 1, **base)
        _, specs = layer_specs(synthesis)
        ours = [spec.name for spec in specs]
        if ours != names:
            raise CheckpointError(f"{og.source}: unsupported architecture: its synthesis layers "
                                  f"({', '.join(names[:4])}, ...) differ from ours ({', '.join(ours[:4])}, ...)")
        for name, spec in zip(names, specs):
            problem = _spec_mismatch(og, name, spec)
            if problem:
                raise CheckpointError(f"{og.source}: unsupported architecture: {problem}")
        return GeneratorConfig(mapping=mapping, synthesis=synthesis)

    # SuperresGenerator: only the stem's gap is visible in the names (later stages number their
    # layers by count, which continues without a gap), so search the growth stages.
    if len(segments) != 2:
        raise CheckpointError(f"{og.source}: unexpected layer numbering for a SuperresGenerator "
                              f"({', '.join(names[:6])}, ...)")
    stem_layers = len(segments[0]) + num_critical
    rates = og.attributes.get("synthesis.sampling_rates")
    stem_res_options = [2**k for k in range(2, int(math.log2(img_res)))]
    if isinstance(rates, list) and len(rates) == stem_layers + 1:
        stem_res_options = [int(rates[-1])]  # the stem's last (critically sampled) rate = its resolution
    last_up = og.attributes.get("up_factor")
    head_names = og.attributes.get("head_layer_names")
    last_head = len(head_names) - 1 if isinstance(head_names, list) and head_names else None
    for stem_res in stem_res_options:
        stem = SynthesisConfig(stem_resolution=stem_res, num_layers=stem_layers, **base)
        stages = _search_stages(og, names, stem, img_res, last_up, last_head)
        if stages is not None:
            stem.stages = stages
            return GeneratorConfig(mapping=mapping, synthesis=stem)
    raise CheckpointError(f"{og.source}: unsupported architecture: no StyleGAN-XL growth schedule reproduces "
                          f"its synthesis layers ({', '.join(names[:4])}, ...)")


_SPEC_KEYS = ("in_channels", "out_channels", "in_sampling_rate", "out_sampling_rate", "in_cutoff", "out_cutoff",
              "is_torgb", "is_critically_sampled")


def _spec_mismatch(og: OfficialGenerator, name: str, spec: Any) -> str | None:
    """How our layer spec differs from the official layer's name and stored specification (None: it does not)."""
    if spec.name != name:
        return f"layer {name} is {spec.name} in ours"
    p = f"synthesis.{name}."
    for key in _SPEC_KEYS:
        if p + key in og.attributes and not _close(og.attributes[p + key], getattr(spec, key)):
            return f"{p}{key} is {og.attributes[p + key]!r} in the file, {getattr(spec, key)!r} in ours"
    return None


def _spec_matches(og: OfficialGenerator, name: str, spec: Any) -> bool:
    return _spec_mismatch(og, name, spec) is None


def _search_stages(og: OfficialGenerator, names: list[str], stem: SynthesisConfig, img_res: int,
                   last_up: Any, last_head: int | None) -> list[GrowthStage] | None:
    """Growth stages (up_factor, head_layers) whose layers reproduce `names` (depth-first, pruned per stage).

    A stage's kept layers (all but its critically sampled ones and ToRGB) are final once the stage
    exists, so each candidate stage is checked against the official layers at their positions.
    """
    num_critical = stem.num_critical

    def specs_of(stages: list[GrowthStage]) -> list | None:
        cfg = copy.copy(stem)
        cfg.stages = stages
        try:
            return layer_specs(cfg)[1]
        except (ValueError, ZeroDivisionError, IndexError, OverflowError):
            return None

    def search(stages: list[GrowthStage], res: int) -> list[GrowthStage] | None:
        for up in _UP_FACTORS:
            if res * up > img_res or img_res % (res * up):
                continue
            final = res * up == img_res
            for head in range(num_critical + 1, len(names) + num_critical + 1):
                if final and last_head is not None and head != last_head:
                    continue
                if final and last_up is not None and up != last_up:
                    continue
                cand = stages + [GrowthStage(up_factor=up, head_layers=head)]
                specs = specs_of(cand)
                if specs is None:
                    continue
                check = specs if final else specs[: len(specs) - (num_critical + 1)]
                if len(check) > len(names) or (final and len(specs) != len(names)):
                    continue
                if not all(_spec_matches(og, n, sp) for n, sp in zip(names, check)):
                    continue
                if final:
                    return cand
                found = search(cand, res * up)
                if found is not None:
                    return found
        return None

    stem_specs = specs_of([])
    kept = len(stem_specs) - (num_critical + 1) if stem_specs else 0
    if not stem_specs or not all(_spec_matches(og, n, sp) for n, sp in zip(names[:kept], stem_specs[:kept])):
        return None
    return search([], stem.stem_resolution)


# ----------------------------------------------------------------------------- weights


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)), abs(float(b)))
    return a == b


def _verify_architecture(G: Generator, og: OfficialGenerator) -> None:
    """Every stored layer specification must equal ours, or the images would silently differ."""
    problems = []

    def check(key: str, ours: Any) -> None:
        if key in og.attributes and not _close(og.attributes[key], ours):
            problems.append(f"{key}: official {og.attributes[key]!r}, ours {ours!r}")

    spec = G.synthesis.input.spec
    check("synthesis.input.channels", spec.channels)
    check("synthesis.input.size", [spec.size, spec.size])
    check("synthesis.input.sampling_rate", spec.sampling_rate)
    check("synthesis.input.bandwidth", spec.bandwidth)
    for layer in G.synthesis.layers():
        s, p = layer.spec, f"synthesis.{layer.spec.name}."
        for key in ("is_torgb", "is_critically_sampled", "use_fp16", "in_channels", "out_channels",
                    "in_sampling_rate", "out_sampling_rate", "in_cutoff", "out_cutoff", "in_half_width",
                    "out_half_width"):
            check(p + key, getattr(s, key))
        check(p + "in_size", [s.in_size, s.in_size])
        check(p + "out_size", [s.out_size, s.out_size])
        check(p + "up_factor", layer.up_factor)
        check(p + "down_factor", layer.down_factor)
        check(p + "padding", layer.padding)
        check(p + "conv_kernel", layer.conv_kernel)
    for name, module in G.named_modules():
        if isinstance(module, FullyConnectedLayer):
            check(f"{name}.activation", module.activation)
            check(f"{name}.weight_gain", module.weight_gain)
            check(f"{name}.bias_gain", module.bias_gain)
    check("num_ws", G.num_ws)
    if problems:
        raise CheckpointError(f"{og.source}: unsupported architecture: it differs from ours in "
                              f"{len(problems)} places, e.g. {'; '.join(problems[:3])}")


def generator_from_official(og: OfficialGenerator) -> Generator:
    """Build our generator for `og` and load every official tensor into it (strict, see the table above)."""
    cfg = official_to_config(og)
    G = Generator(cfg)
    _verify_architecture(G, og)
    ours = G.state_dict()
    derived = dict(G.named_buffers())  # includes the non-persistent up/down filters
    new_state: dict[str, torch.Tensor] = {}
    unmapped = []
    for name, tensor in og.tensors.items():
        if name.endswith((".up_filter", ".down_filter")):
            mine = derived.get(name)
            if mine is None or mine.shape != tensor.shape:
                raise CheckpointError(f"{og.source}: filter {name} {list(tensor.shape)} has no counterpart "
                                      f"{None if mine is None else list(mine.shape)} in our design")
            diff = (mine - tensor.to(mine.dtype)).abs().max().item() if tensor.numel() else 0.0
            if not diff <= FILTER_TOLERANCE:
                raise CheckpointError(f"{og.source}: filter {name} differs from our filter design by {diff:.3g}")
            continue
        if name == "mapping.embed.weight":
            if cfg.mapping.c_dim == 0:
                continue  # unconditional: the official mapping never reads its embedding table
            tensor = tensor[: cfg.mapping.c_dim]  # rows argmax(c) < c_dim are the only ones used
        if name not in ours:
            unmapped.append(name)
            continue
        if tuple(tensor.shape) != tuple(ours[name].shape):
            raise CheckpointError(f"{og.source}: tensor {name} has shape {list(tensor.shape)}, "
                                  f"ours {list(ours[name].shape)}")
        new_state[name] = tensor.to(ours[name].dtype).clone()
    if unmapped:
        raise CheckpointError(f"{og.source}: unsupported architecture: {len(unmapped)} official tensors have no "
                              f"place in our generator, e.g. {', '.join(unmapped[:3])}")
    missing = sorted(set(ours) - set(new_state))
    if missing:
        raise CheckpointError(f"{og.source}: the file lacks {len(missing)} tensors our generator needs, "
                              f"e.g. {', '.join(missing[:3])}")
    for name in (k for k in og.attributes if k.endswith((".up_filter", ".down_filter"))):
        if og.attributes[name] is None and derived.get(name) is not None:
            raise CheckpointError(f"{og.source}: {name} is an identity filter in the file but not in our design")
    G.load_state_dict(new_state, strict=True)
    return G.eval().requires_grad_(False)


def load_official_generator(path: str | Path) -> Generator:
    """Our `Generator` with the weights of an official StyleGAN-XL `.pkl` (G_ema, fallback G)."""
    return generator_from_official(read_official_generator(path))


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def _snapshot_meta(data: dict, og: OfficialGenerator, path: Path) -> dict:
    meta: dict[str, Any] = {"source": "official StyleGAN-XL snapshot", "source_file": path.name,
                            "official_class": og.class_name, "official_key": og.attributes.get("_snapshot_key")}
    progress = data.get("progress")
    if isinstance(progress, dict) and isinstance(progress.get("cur_nimg"), torch.Tensor):
        meta["kimg"] = float(progress["cur_nimg"].item()) / 1000
    if isinstance(data.get("training_set_kwargs"), dict):
        meta["training_set_kwargs"] = _jsonable(_plain(data["training_set_kwargs"]))
    if isinstance(og.attributes.get("path_stem"), str):
        meta["path_stem"] = og.attributes["path_stem"]
    return meta


def load_official_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """An official `.pkl` as our `core.io.checkpoint.Checkpoint` (converted in memory, nothing run)."""
    from core.io.checkpoint import Checkpoint

    path = _check_path(path)
    data = read_official_pickle(path)
    og = official_generator_from_snapshot(data, source=str(path))
    G = generator_from_official(og).to(device)
    return Checkpoint(generator=G, config=G.cfg, class_names=None, meta=_snapshot_meta(data, og, path), path=path)


# ----------------------------------------------------------------------------- description


def describe_official(path: str | Path) -> str:
    """A human-readable summary of an official `.pkl` (for `sgxl info`); reads, never runs, never converts."""
    path = _check_path(path)
    data = read_official_pickle(path)
    og = official_generator_from_snapshot(data, source=str(path))
    a = og.attributes
    lines = [f"official pickle  {path}", f"entries          {', '.join(map(str, data))}"]
    kind = {"Generator": "StyleGAN-XL stem generator", "SuperresGenerator": "StyleGAN-XL progressive stage"}
    lines.append(f"generator        {og.class_name} ({kind.get(og.class_name, 'unknown kind')}, "
                 f"from {a.get('_snapshot_key')})")
    res = a.get("img_resolution")
    lines.append(f"resolution       {res}x{res}")
    lines.append(f"latents          z {a.get('z_dim')}, w {a.get('w_dim')}, num_ws {a.get('num_ws')}")
    lines.append(f"classes          {a.get('c_dim')}")
    layer_names = a.get("synthesis.layer_names") or []
    lines.append(f"layers           {len(layer_names)}: {', '.join(layer_names)}")
    n_params = sum(t.numel() for k, t in og.tensors.items() if k in og.parameter_names)
    n_mapping = sum(t.numel() for k, t in og.tensors.items() if k in og.parameter_names and k.startswith("mapping."))
    lines.append(f"params           {n_params:,} (mapping {n_mapping:,}, synthesis {n_params - n_mapping:,})")
    progress = data.get("progress")
    if isinstance(progress, dict) and isinstance(progress.get("cur_nimg"), torch.Tensor):
        lines.append(f"trained          {progress['cur_nimg'].item() / 1000:.1f} kimg")
    try:
        cfg = official_to_config(og)
    except CheckpointError as e:
        lines.append(f"conversion       not supported: {e}")
        return "\n".join(lines)
    s = cfg.synthesis
    stages = ", ".join(f"x{st.up_factor} with {st.head_layers} head layers" for st in s.stages) or "none"
    lines.append(f"stages           stem {s.stem_resolution}² with {s.num_layers} layers; growth stages: {stages}")
    lines.append(f"channels         base {s.channel_base}, max {s.channel_max}")
    if og.class_name == "SuperresGenerator":
        lines.append(f"head layers      {', '.join(a.get('head_layer_names') or [])}")
    lines.append("conversion       supported: `sgxl convert` writes it as a .sgxl checkpoint")
    return "\n".join(lines)
