"""The restricted unpickler for official snapshots: only an allow-list of names, each to a harmless handler.

Why: an official snapshot is a pickle (written with `dill`) whose generator modules carry their own
Python source (`torch_utils.persistence`); the official loader `exec`s that source, and any pickle
may name any callable for the loader to run (`os.system`, `eval`...). Here `find_class` resolves
only the names below, and every other name is refused before anything is called:

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
"""

from __future__ import annotations

import _compat_pickle
import pickle
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch

from core.errors import CheckpointError
from core.io.official.tensors import (
    _NDARRAY,
    _PARAMETER_TYPE,
    _TENSOR_TYPE,
    _TORCH_DTYPES,
    _load_from_bytes,
    _Marker,
    _np_dtype,
    _np_frombuffer,
    _np_reconstruct,
    _np_scalar,
    _rebuild_from_type_v2,
    _rebuild_parameter,
    _rebuild_tensor,
    _rebuild_tensor_v2,
)

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


_OBJECT_BASE = _Marker("builtins.object")


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

