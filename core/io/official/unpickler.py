"""The restricted unpickler for official snapshots: an allow-list of names, each mapped to a harmless handler.

Why: an official snapshot is a pickle, written by the training loop with `dill`, whose generator modules
carry their own Python source (`torch_utils.persistence`). The official loader `exec`s that source, and
any pickle may name any callable for the loader to run (`os.system`, `eval`...). Here the opcodes run on
the bounded machine of `core.io.official.machine` (lengths, memo, opcode count and nesting are limited;
see its docstring), and every name the file uses resolves through `_SnapshotMachine.find_class` to one
of the values below. Any other name is refused before anything is called. The four rules that make the
allowed names safe:

1. No handler runs code from the file or imports anything: each is a function of this package (or a
   plain value) that checks its arguments and builds data.
2. Only the handlers themselves and inert stub classes may be called (REDUCE / NEWOBJ): calling anything
   else, e.g. a function or bound method the file rebuilt with dill, is refused (a snapshot never calls
   such a thing while it loads; a payload does).
3. BUILD (`__setstate__`) only reaches objects this load created, and only of four kinds: inert stubs
   (they store the state), EasyDicts (plain items), numpy arrays and dtypes (state checked field by
   field). The allowed globals, markers and stub classes themselves are never modified, so a crafted
   file cannot change what the next load sees.
4. Items (SETITEM(S), APPEND(S), ADDITEMS) only go into dicts, lists and sets the load built, and into
   inert stubs (which store them).

The allowed names (what each becomes; why that is safe):

- `torch_utils.persistence._reconstruct_persistent_obj` -> `PersistentRecord(class_name, state)`.
  `module_src` is dropped unread; the record is data.
- `torch._utils._rebuild_tensor(_v2)`, `_rebuild_parameter(_with_state)`, `torch._tensor._rebuild_from_type_v2`
  -> a CPU tensor viewing a storage read from the file. Offset, sizes and strides are checked against the
  storage, a view may not address more elements than its storage holds, and hooks, grad flags and
  Python state are dropped.
- `torch.storage._load_from_bytes` -> a flat tensor parsed from the legacy `torch.save` bytes. Its small
  pickles run on the same bounded machine, their only names are the storage types, and element counts
  are checked against the bytes present.
- `torch.Tensor`, `torch.nn.Parameter`, `numpy.ndarray`, `builtins.object` -> markers, only compared by
  identity inside other handlers; never called, filled or built.
- `torch.<dtype>` (`float32`, ...) -> the torch dtype: an immutable value that nothing may fill or build.
- `torch.Size`, `collections.OrderedDict`, builtins `set frozenset dict list tuple bytearray complex
  slice` -> the value, through wrappers whose arguments must already be containers or numbers (no
  `bytearray(10**12)`, no `list(<a GB of bytes>)`), so memory stays linear in the file size.
- `numpy.dtype`, `numpy.(_)core.multiarray._reconstruct / scalar`, `numpy.(_)core.numeric._frombuffer`,
  `numpy.(_)core._multiarray_umath._reconstruct / scalar` -> numpy dtypes, arrays and scalars of plain
  numbers, bytes and text (object, structured, sub-array and zero-size dtypes are refused). Array bytes
  must equal shape x itemsize; a dtype is always a fresh copy, and its BUILD state may only set the
  byte order (every other field, the flags included, must be numpy's own for that dtype).
- `_codecs.encode(text, 'latin1')` -> bytes (how protocol 2 stores bytes); other encodings are refused.
- `copyreg._reconstructor(cls, object, None)` -> an empty stub or EasyDict; nothing else. Its state
  arrives through the checked BUILD.
- `dnnlib.util.EasyDict`, `dnnlib.EasyDict` -> a dict subclass holding items only.
- `dill._dill._import_module(name)` -> an inert module reference: nothing is imported, and names outside
  the modules of this list and the stub prefixes are refused (`os`, `subprocess`, ...).
- `dill._dill._get_attr(obj, name)` -> on a module reference, exactly what `find_class(module, name)`
  gives (an entry of this list, a stub, or a refusal); dill 0.3.4 names numpy's `scalar` and
  `_reconstruct` this way. On a stub, an inert attribute record. On anything else, a refusal.
- `dill._dill._load_type(name)` -> the wrapper for `list tuple dict set frozenset bytearray complex
  slice`, the `object` marker, or else an inert stub class: none of Python's own types is handed out.
- `dill._dill._create_array(f, args, state, npdict)` (dill 0.4) -> a numpy array; `f` must be numpy's
  `_reconstruct`, the state is checked as for BUILD and `npdict` must be empty.
- classes under `torch.nn.modules.`, `torch.nn.utils.`, `timm.`, `pg_modules.`, `feature_networks.`, and
  `functools.partial`, `torch.device`, dill's `_create_function _create_code _create_cell
  _create_namedtuple _create_type` -> inert stub classes (`InertObject`). They appear in the
  discriminator; calling one only records its arguments, and by rule 2 what it returns is never called.

Opcodes: all of protocols 0-5 that build data (numbers, strings, bytes, containers, memo, MARK/POP/DUP,
FRAME, PROTO) are read with their lengths checked; GLOBAL / STACK_GLOBAL go through `find_class`;
REDUCE / NEWOBJ / NEWOBJ_EX / BUILD and the item opcodes follow rules 2-4, and what a handler allocates
is charged to the machine's budget; persistent ids (PERSID, BINPERSID), INST, OBJ, EXT1/2/4 and
out-of-band buffers are refused.
"""

from __future__ import annotations

import _compat_pickle
import mmap
import pickle
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import CheckpointError
from core.io.official.machine import Machine
from core.io.official.tensors import (
    _NDARRAY,
    _PARAMETER_TYPE,
    _TENSOR_TYPE,
    _TORCH_DTYPES,
    _load_from_bytes,
    _Marker,
    _np_array_setstate,
    _np_dtype,
    _np_dtype_setstate,
    _np_frombuffer,
    _np_reconstruct,
    _np_scalar,
    _rebuild_from_type_v2,
    _rebuild_parameter,
    _rebuild_tensor,
    _rebuild_tensor_v2,
    _Storage,
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

    Pickle may create it (NEWOBJ / REDUCE on its class), give it state (BUILD) and items (SETITEMS /
    APPENDS); all of these only store what they are given. An instance is never called.
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

    def extend(self, values: Any) -> None:
        self.list_items.extend(values)

    def __repr__(self) -> str:
        return f"<inert {self.module_name}.{self.class_name}>"


class _InertAttribute(InertObject):
    """`dill._dill._get_attr(stub, name)`: a reference to an attribute of an inert object."""

    module_name = "(attribute)"
    class_name = "of an inert object"


class _ModuleRef:
    """`dill._dill._import_module(name)`: a module name, nothing imported. Only `_get_attr` reads it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<module {self.name} (not imported)>"


class _EasyDict(dict):
    """`dnnlib.util.EasyDict` read as a plain dict (its instance state, if any, is merged in)."""


_OBJECT_BASE = _Marker("builtins.object")

# ----------------------------------------------------------------------------- handlers


def _container_arg(args: tuple, what: str) -> tuple:
    """Builtin constructors take no argument or one that is already a container: memory stays linear."""
    if len(args) > 1 or (args and not isinstance(args[0], (list, tuple, set, frozenset, dict))):
        raise CheckpointError(f"refused: unexpected {what}(...) arguments")
    return args


def _set(*args: Any) -> set:
    return set(*_container_arg(args, "set"))


def _frozenset(*args: Any) -> frozenset:
    return frozenset(*_container_arg(args, "frozenset"))


def _dict(*args: Any) -> dict:
    return dict(*_container_arg(args, "dict"))


def _list(*args: Any) -> list:
    return list(*_container_arg(args, "list"))


def _tuple(*args: Any) -> tuple:
    return tuple(*_container_arg(args, "tuple"))


def _ordered_dict(*args: Any) -> OrderedDict:
    return OrderedDict(*_container_arg(args, "OrderedDict"))


def _easy_dict(*args: Any) -> _EasyDict:
    return _EasyDict(*_container_arg(args, "EasyDict"))


def _torch_size(*args: Any) -> torch.Size:
    if len(args) != 1 or not isinstance(args[0], (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in args[0]):
        raise CheckpointError("refused: unexpected torch.Size(...) arguments")
    return torch.Size(args[0])


def _bytearray(*args: Any) -> bytearray:
    """bytearray(), bytearray(bytes) or protocol 2's bytearray(latin-1 text, 'latin-1'); never bytearray(n)."""
    if not args:
        return bytearray()
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytearray(args[0])
    if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
        return bytearray(args[0], "latin-1")
    raise CheckpointError("refused: unexpected bytearray(...) arguments")


def _complex(*args: Any) -> complex:
    if len(args) > 2 or not all(isinstance(a, (int, float)) for a in args):
        raise CheckpointError("refused: unexpected complex(...) arguments")
    return complex(*args)


def _slice(*args: Any) -> slice:
    if not 1 <= len(args) <= 3 or not all(a is None or isinstance(a, int) for a in args):
        raise CheckpointError("refused: unexpected slice(...) arguments")
    return slice(*args)


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """`_codecs.encode`, used by protocol-2 pickles to store bytes as latin-1 text."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError("refused: unexpected _codecs.encode call")
    return text.encode("latin1")


def _copyreg_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """copyreg._reconstructor, only to create an empty inert stub (state arrives later via BUILD)."""
    if isinstance(cls, type) and issubclass(cls, InertObject) and base is _OBJECT_BASE and state is None:
        return cls.__new__(cls)
    if cls is _easy_dict and base is _dict and isinstance(state, dict):
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


# ----------------------------------------------------------------------------- the allow-list

_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TENSOR_TYPE,
    ("torch._tensor", "Tensor"): _TENSOR_TYPE,
    ("torch.nn.parameter", "Parameter"): _PARAMETER_TYPE,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("torch", "Size"): _torch_size,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _np_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy.core._multiarray_umath", "_reconstruct"): _np_reconstruct,  # dill 0.3.4 names these two
    ("numpy._core._multiarray_umath", "_reconstruct"): _np_reconstruct,  # through _get_attr
    ("numpy.core.multiarray", "scalar"): _np_scalar,
    ("numpy._core.multiarray", "scalar"): _np_scalar,
    ("numpy.core._multiarray_umath", "scalar"): _np_scalar,
    ("numpy._core._multiarray_umath", "scalar"): _np_scalar,
    ("numpy.core.numeric", "_frombuffer"): _np_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _np_frombuffer,
    ("_codecs", "encode"): _codecs_encode,
    ("copyreg", "_reconstructor"): _copyreg_reconstructor,
    ("builtins", "object"): _OBJECT_BASE,
    ("builtins", "set"): _set,
    ("builtins", "frozenset"): _frozenset,
    ("builtins", "dict"): _dict,
    ("builtins", "list"): _list,
    ("builtins", "tuple"): _tuple,
    ("builtins", "bytearray"): _bytearray,
    ("builtins", "complex"): _complex,
    ("builtins", "slice"): _slice,
    ("dnnlib.util", "EasyDict"): _easy_dict,
    ("dnnlib", "EasyDict"): _easy_dict,
}
_MARKERS = (_TENSOR_TYPE, _PARAMETER_TYPE, _NDARRAY, _OBJECT_BASE)
_CALLABLE_HANDLERS = {id(v): v for v in _ALLOWED.values() if v not in _MARKERS}
# NEWOBJ (cls.__new__) is allowed for these handlers, meaning an empty container of their type.
_NEWOBJ_TYPES = {id(_ordered_dict): OrderedDict, id(_easy_dict): _EasyDict, id(_dict): dict, id(_list): list,
                 id(_set): set}
# Classes of the discriminator and its feature networks (and dill's helpers for its closures):
# they become inert stubs, so a file may contain them without anything of theirs being run.
_STUB_MODULE_PREFIXES = ("torch.nn.modules.", "torch.nn.utils.", "timm.", "pg_modules.", "feature_networks.")
_STUB_NAMES = {
    ("functools", "partial"), ("torch", "device"),
    *(("dill._dill", n) for n in ("_create_function", "_create_code", "_create_cell", "_create_namedtuple",
                                  "_create_type")),
}
# Modules `dill._dill._import_module` may name: those of the allow-list and the stub prefixes.
_IMPORTABLE = {module for module, _ in _ALLOWED} | {module for module, _ in _STUB_NAMES} | {"numpy", "torch"}
_DILL_TYPES = {"list": _list, "tuple": _tuple, "dict": _dict, "set": _set, "frozenset": _frozenset,
               "bytearray": _bytearray, "complex": _complex, "slice": _slice, "object": _OBJECT_BASE,
               "ListType": _list, "TupleType": _tuple, "DictType": _dict, "ObjectType": _OBJECT_BASE}


def _allocated(obj: Any) -> int:
    """About how many bytes a handler's result holds that were not in the file's values before."""
    if isinstance(obj, (bytes, bytearray, str)):
        return len(obj)
    if isinstance(obj, (list, tuple, set, frozenset, dict)):
        return 64 + 16 * len(obj)
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, _Storage):
        return obj.flat.nbytes
    return 64  # tensors are views of a storage already counted; records and stubs hold references


def _describe(obj: Any) -> str:
    if isinstance(obj, InertObject):
        return f"an object it rebuilt ({obj.module_name}.{obj.class_name})"
    if isinstance(obj, type):
        return f"the class {obj.__name__}"
    return f"a {type(obj).__name__}"


class _SnapshotMachine(Machine):
    """The snapshot's pickle: names resolve through the allow-list; rules 2-4 of the docstring."""

    def __init__(self, data: Any, source: str) -> None:
        super().__init__(data, source=source)
        self.stub_classes: dict[tuple[str, str], type] = {}
        # dill's helpers that need this load's name resolution; bound once, so identity marks them.
        self.dill_import_module, self.dill_get_attr = self._dill_import_module, self._dill_get_attr
        self.dill_load_type, self.dill_create_array = self._dill_load_type, self._dill_create_array
        self.dill = {"_import_module": self.dill_import_module, "_get_attr": self.dill_get_attr,
                     "_load_type": self.dill_load_type, "_create_array": self.dill_create_array}
        self.dill_ids = {id(f) for f in self.dill.values()}

    def _refuse(self, what: str) -> CheckpointError:
        return CheckpointError(f"refused: this file asks to run {what}, which a StyleGAN checkpoint never needs; "
                               f"nothing was run ({self.source}). The file may be malicious or not an official "
                               "snapshot.")

    def _stub(self, module: str, name: str) -> type:
        key = (module, name)
        if key not in self.stub_classes:
            self.stub_classes[key] = type(name, (InertObject,), {"module_name": module, "class_name": name})
        return self.stub_classes[key]

    def _is_stub_class(self, obj: Any) -> bool:
        return (isinstance(obj, type) and issubclass(obj, InertObject)
                and self.stub_classes.get((obj.module_name, obj.class_name)) is obj)

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 0-2 pickles name Python 2 modules (`__builtin__.set`); translate them as pickle does.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        key = (module, name)
        if key in _ALLOWED:
            return _ALLOWED[key]
        if module == "torch" and name in _TORCH_DTYPES:
            return getattr(torch, name)
        if module == "dill._dill" and name in self.dill:
            return self.dill[name]
        if key in _STUB_NAMES or (module.startswith(_STUB_MODULE_PREFIXES) and name.isidentifier()):
            return self._stub(module, name)
        raise self._refuse(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(f"refused: {self.source} holds a persistent reference that only code could resolve")

    # rule 2: only handlers and stub classes are called
    def call(self, func: Any, args: tuple) -> Any:
        if self._is_stub_class(func):
            return self.created(func(*args))
        # ids are safe here: the handlers live as long as the module, the dill helpers as long as this load.
        if id(func) not in _CALLABLE_HANDLERS and id(func) not in self.dill_ids:
            raise CheckpointError(f"refused: this file calls {_describe(func)} while loading, which only code "
                                  f"would do; nothing was run ({self.source})")
        result = func(*args)
        self.charge(_allocated(result))
        if isinstance(result, (InertObject, _EasyDict, np.ndarray, np.dtype)):
            self.created(result)  # fresh objects of the kinds BUILD may fill in
        return result

    def new_object(self, cls: Any, args: tuple, kwargs: dict) -> Any:
        if self._is_stub_class(cls):
            return self.created(cls.__new__(cls, *args, **kwargs))
        container = _NEWOBJ_TYPES.get(id(cls))
        if container is not None:
            return self.created(container())
        raise CheckpointError(f"refused: this file creates an instance of {_describe(cls)}, which is not on the "
                              f"allow-list; nothing was run ({self.source})")

    # rule 3: BUILD only on objects this load created
    def build(self, inst: Any, state: Any) -> None:
        if not self.was_created(inst) or not isinstance(inst, (InertObject, _EasyDict, np.ndarray, np.dtype)):
            raise CheckpointError(f"refused: this file changes the state of {_describe(inst)} that it did not "
                                  f"create (pickle BUILD); nothing was changed ({self.source})")
        if isinstance(inst, InertObject):
            inst.__setstate__(state)
        elif isinstance(inst, _EasyDict):
            if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
                state = state[0]
            if state is not None and not isinstance(state, dict):
                raise CheckpointError(f"refused: unexpected EasyDict state ({self.source})")
            inst.update(state or {})
        elif isinstance(inst, np.ndarray):
            _np_array_setstate(inst, state)
            self.charge(inst.nbytes)
        else:
            _np_dtype_setstate(inst, state)

    # rule 4: items only into containers and stubs
    def set_items(self, target: Any, pairs: list[tuple[Any, Any]]) -> None:
        if isinstance(target, InertObject):
            for key, value in pairs:
                target[key] = value
            return
        super().set_items(target, pairs)

    def append_items(self, target: Any, items: list[Any]) -> None:
        if isinstance(target, InertObject):
            target.extend(items)
            return
        super().append_items(target, items)

    # dill's helpers
    def _dill_import_module(self, name: Any, safe: Any = False) -> _ModuleRef:
        if not isinstance(name, str) or not (name in _IMPORTABLE or (name + ".").startswith(_STUB_MODULE_PREFIXES)):
            raise CheckpointError(f"refused: this file imports the module {name!r}, which a StyleGAN checkpoint "
                                  f"never needs; nothing was imported or run ({self.source})")
        return _ModuleRef(name)

    def _dill_get_attr(self, obj: Any, name: Any) -> Any:
        if not isinstance(name, str):
            raise CheckpointError(f"corrupt dill attribute record ({self.source})")
        if isinstance(obj, _ModuleRef):
            return self.find_class(obj.name, name)
        if isinstance(obj, InertObject) or self._is_stub_class(obj):
            return self.created(_InertAttribute(obj, name))
        raise self._refuse(f"an attribute {name!r} of {_describe(obj)}")

    def _dill_load_type(self, name: Any) -> Any:
        if not isinstance(name, str) or not name.isidentifier():
            raise CheckpointError(f"corrupt dill type record ({self.source})")
        return _DILL_TYPES.get(name) or self._stub("dill._dill._load_type", name)

    def _dill_create_array(self, f: Any, args: Any, state: Any, npdict: Any = None) -> np.ndarray:
        """dill 0.4's numpy arrays: `f(*args)` then `__setstate__(state)`, with f = numpy's `_reconstruct`."""
        if f is not _np_reconstruct or not isinstance(args, tuple):
            raise CheckpointError(f"refused: dill array record with an unexpected constructor ({self.source})")
        if npdict:
            raise CheckpointError(f"refused: numpy array subclass attributes are not read ({self.source})")
        array = _np_reconstruct(*args)
        _np_array_setstate(array, state)
        return array


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
    try:
        with path.open("rb") as f:
            head = f.read(4)
            if not head:
                raise CheckpointError(f"{path} is empty")
            if head[:2] == b"PK":
                raise CheckpointError(f"{path} is a zip archive, not an official .pkl snapshot "
                                      "(a .sgxl checkpoint or a torch.save file?)")
            if head[0] != 0x80:
                raise CheckpointError(f"{path} is not a pickle file (official StyleGAN-XL snapshots are pickles)")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                data, _ = _SnapshotMachine(mm, str(path)).load()
    except CheckpointError:
        raise
    except EOFError:
        raise CheckpointError(f"{path} is truncated: the pickle ends early (incomplete download?)") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e}") from None
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path} is corrupt and cannot be read as a snapshot ({e})") from None
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, struct.error, RecursionError,
            UnicodeDecodeError, OverflowError, MemoryError, RuntimeError) as e:
        raise CheckpointError(f"{path} is corrupt and cannot be read as a snapshot "
                              f"({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not the dict of an official snapshot")
    return data
