"""The official-checkpoint reader never runs code from the file, and fails clearly on broken files.

Malicious pickles are built here, in `tmp_path`, each aimed at creating a marker file; the reader
must refuse them with `CheckpointError` and the marker must not exist afterwards. Control checks
show that the same payloads do create the marker when loaded with plain `pickle`.
"""

from __future__ import annotations

import io
import os
import pathlib
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from core.errors import CheckpointError
from core.io.checkpoint import load_checkpoint
from core.io.official import (
    InertObject,
    PersistentRecord,
    describe_official,
    load_official_generator,
    official_generator_from_snapshot,
    read_official_generator,
    read_official_pickle,
)
from tests.helpers import OFFICIAL_FIXTURES, install_persistence_stand_in
from tests.pickle_ops import (
    BINPERSID,
    NEWFALSE,
    NONE,
    PROTO2,
    PROTO4,
    STOP,
    legacy_storage_stream,
    op_call,
    op_global,
    op_int,
    op_stack_global,
    op_str,
    op_tuple,
    snapshot,
    tensor_ops,
    write,
)

FIXTURES = OFFICIAL_FIXTURES
STEM = FIXTURES / "sgxl_tiny16_c10.pkl"
ENTRY_POINTS: list[Callable] = [read_official_pickle, read_official_generator, load_official_generator,
                                describe_official, load_checkpoint]

# ----------------------------------------------------------------------------- code execution attempts


class _SystemCall:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return os.system, (self.command,)


class _Touch:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return pathlib.Path.touch, (pathlib.Path(self.path),)


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda f: f.__name__)
def test_reduce_to_os_system_is_refused(tmp_path: Path, entry: Callable) -> None:
    marker = tmp_path / "pwned"
    path = write(tmp_path, pickle.dumps({"G_ema": _SystemCall(f"touch {marker}")}, protocol=4))
    with pytest.raises(CheckpointError, match=r"refused: this file asks to run (posix|nt|os)\.system"):
        entry(path)
    assert not marker.exists()


def test_reduce_payload_runs_under_plain_pickle_but_not_here(tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    payload = pickle.dumps({"G_ema": _Touch(marker)}, protocol=4)
    pickle.loads(payload)  # control: the payload is live
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError, match=r"refused: this file asks to run pathlib\.Path\.touch"):
        read_official_pickle(write(tmp_path, payload))
    assert not marker.exists()


class _PersistentModule:
    """Pickles like an official persistent module whose source would create a marker when exec'd."""

    def __init__(self, fn: object, module_src: str, state: dict) -> None:
        self.fn, self.module_src, self.state = fn, module_src, state

    def __reduce__(self) -> tuple:
        meta = {"type": "class", "version": 6, "module_src": self.module_src, "class_name": "Generator",
                "state": self.state}
        return self.fn, (meta,)


@pytest.fixture
def persistence_fn(monkeypatch: pytest.MonkeyPatch) -> object:
    """A stand-in `torch_utils.persistence._reconstruct_persistent_obj` that, like the official one, execs."""

    def exec_module_src(meta: dict) -> dict:
        namespace: dict = {}
        exec(meta["module_src"], namespace)  # what the official loader does; only used as a control here
        return namespace

    return install_persistence_stand_in(monkeypatch, exec_module_src)


def test_persistent_module_source_is_never_executed(tmp_path: Path, persistence_fn: object) -> None:
    marker = tmp_path / "from_module_src"
    source = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\nclass Generator:\n    pass\n"
    payload = pickle.dumps({"G_ema": _PersistentModule(persistence_fn, source, {"z_dim": 64})}, protocol=4)
    pickle.loads(payload)  # control: an exec-ing loader runs the source
    assert marker.exists()
    marker.unlink()

    path = write(tmp_path, payload)
    data = read_official_pickle(path)
    record = data["G_ema"]
    assert isinstance(record, PersistentRecord) and record.class_name == "Generator"
    assert record.state == {"z_dim": 64} and record.module_name is None
    assert not marker.exists()
    with pytest.raises(CheckpointError):  # a record without weights is no generator
        load_official_generator(path)
    assert not marker.exists()


def test_malicious_state_inside_a_persistent_module_is_refused(tmp_path: Path, persistence_fn: object) -> None:
    marker = tmp_path / "pwned"
    state = {"_modules": {"mapping": _SystemCall(f"touch {marker}")}}
    path = write(tmp_path, pickle.dumps({"G_ema": _PersistentModule(persistence_fn, "", state)}, protocol=4))
    with pytest.raises(CheckpointError, match="refused"):
        read_official_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [
    ("os", "system"), ("posix", "system"), ("subprocess", "Popen"), ("subprocess", "check_output"),
    ("builtins", "eval"), ("builtins", "exec"), ("builtins", "getattr"), ("builtins", "__import__"),
    ("builtins", "open"), ("__builtin__", "eval"), ("importlib", "import_module"), ("pickle", "loads"),
    ("torch", "load"), ("numpy", "load"), ("shutil", "rmtree"), ("torch.nn.modules", "os.system"),
    ("dill._dill", "_eval_repr"), ("__main__", "Generator"),
])
@pytest.mark.parametrize("proto", ["GLOBAL", "STACK_GLOBAL"])
def test_unknown_globals_are_refused(tmp_path: Path, module: str, name: str, proto: str) -> None:
    marker = tmp_path / "pwned"
    arg = f"touch {marker}" if name != "eval" and name != "exec" else f"open({str(marker)!r}, 'w').close()"
    fn = op_global(module, name) if proto == "GLOBAL" else op_stack_global(module, name)
    path = write(tmp_path, snapshot(op_call(fn, op_str(arg)), PROTO2 if proto == "GLOBAL" else PROTO4))
    expected = "builtins.eval" if module == "__builtin__" else f"{module}.{name}"
    with pytest.raises(CheckpointError, match="refused: this file asks to run " + expected.replace(".", r"\.")):
        read_official_pickle(path)
    assert not marker.exists()


def test_dill_helpers_cannot_reach_os(tmp_path: Path) -> None:
    # dill-style: _import_module('os') -> _get_attr(<os>, 'system') -> call it. Refused at the import.
    marker = tmp_path / "pwned"
    module = op_call(op_global("dill._dill", "_import_module"), op_str("os"))
    system = op_call(op_global("dill._dill", "_get_attr"), module, op_str("system"))
    path = write(tmp_path, snapshot(op_call(system, op_str(f"touch {marker}"))))
    with pytest.raises(CheckpointError, match="refused: this file imports the module 'os'"):
        read_official_pickle(path)
    assert not marker.exists()
    # Through an allowed module, _get_attr resolves exactly as a global would: refused names stay refused.
    module = op_call(op_global("dill._dill", "_import_module"), op_str("torch"))
    load = op_call(op_global("dill._dill", "_get_attr"), module, op_str("load"))
    with pytest.raises(CheckpointError, match=r"refused: this file asks to run torch\.load"):
        read_official_pickle(write(tmp_path, snapshot(op_call(load, op_str(f"{marker}")))))


def test_allowed_stubs_record_calls_but_their_results_are_never_called(tmp_path: Path) -> None:
    linear = op_call(op_global("torch.nn.modules.linear", "Linear"), op_int(3), op_int(4))
    result = read_official_pickle(write(tmp_path, snapshot(linear)))["G_ema"]
    assert isinstance(result, InertObject) and result.args == (3, 4)
    with pytest.raises(CheckpointError, match="not a StyleGAN generator"):
        load_official_generator(write(tmp_path, snapshot(linear)))
    # Calling what a stub returned (a module's forward, a rebuilt function) is what only code would do.
    with pytest.raises(CheckpointError, match="refused: this file calls an object it rebuilt"):
        read_official_pickle(write(tmp_path, snapshot(op_call(linear, op_str("x")))))
    method = op_call(op_global("dill._dill", "_get_attr"), linear, op_str("forward"))
    with pytest.raises(CheckpointError, match="refused: this file calls an object it rebuilt"):
        read_official_pickle(write(tmp_path, snapshot(op_call(method, op_str("x")))))


def test_copyreg_reconstructor_cannot_build_arbitrary_classes(tmp_path: Path) -> None:
    ops = op_call(op_global("copyreg", "_reconstructor"), op_global("collections", "OrderedDict"),
                  op_global("builtins", "object"), NONE)
    with pytest.raises(CheckpointError, match="refused"):
        read_official_pickle(write(tmp_path, snapshot(ops)))


def test_persistent_ids_in_the_outer_pickle_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="refused"):
        read_official_pickle(write(tmp_path, snapshot(op_str("anything") + BINPERSID)))


def test_numpy_object_arrays_are_refused(tmp_path: Path) -> None:
    dtype = op_call(op_global("numpy", "dtype"), op_str("O"), NEWFALSE, NEWFALSE)
    with pytest.raises(CheckpointError, match="objects"):
        read_official_pickle(write(tmp_path, snapshot(dtype)))


# ----------------------------------------------------------------------------- tensor data


def test_hand_written_legacy_storage_stream_is_parsed(tmp_path: Path) -> None:
    stream = legacy_storage_stream([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    tensor = read_official_pickle(write(tmp_path, snapshot(tensor_ops(stream, (2, 2), (1, 3), offset=1), PROTO4)))[
        "G_ema"]
    assert torch.equal(tensor, torch.tensor([[2.0, 5.0], [3.0, 6.0]]))


def test_real_torch_tensor_pickles_round_trip(tmp_path: Path) -> None:
    tensors = {"a": torch.randn(3, 4), "b": torch.nn.Parameter(torch.randn(2, 5).t()),
               "c": torch.arange(10)[2:7], "d": torch.ones(3, dtype=torch.float16), "e": torch.tensor(2.5)}
    for proto in (2, 4):
        got = read_official_pickle(write(tmp_path, pickle.dumps(tensors, protocol=proto), f"t{proto}.pkl"))
        for key, value in tensors.items():
            assert torch.equal(got[key], value.detach()) and got[key].dtype == value.dtype, key


def test_code_inside_storage_bytes_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = PROTO2 + op_call(op_global("os", "system"), op_str(f"touch {marker}")) + STOP
    stream = legacy_storage_stream([1.0], storage_pickle=evil)
    with pytest.raises(CheckpointError, match=r"refused: this file asks to run os\.system inside tensor data"):
        read_official_pickle(write(tmp_path, snapshot(tensor_ops(stream, (1,), (1,)), PROTO4)))
    assert not marker.exists()
    # Legacy torch.save could also embed module source as a persistent id: refused too.
    module_record = PROTO2 + op_tuple(op_str("module"), op_str("x"), op_str("x.py"), op_str("import os")) \
        + BINPERSID + STOP
    stream = legacy_storage_stream([1.0], storage_pickle=module_record)
    with pytest.raises(CheckpointError, match="other than storages"):
        read_official_pickle(write(tmp_path, snapshot(tensor_ops(stream, (1,), (1,)), PROTO4)))


def test_out_of_bounds_tensor_views_are_refused(tmp_path: Path) -> None:
    stream = legacy_storage_stream([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(CheckpointError, match="reads past its storage"):
        read_official_pickle(write(tmp_path, snapshot(tensor_ops(stream, (10,), (1,)), PROTO4)))
    with pytest.raises(CheckpointError, match="reads past its storage"):
        read_official_pickle(write(tmp_path, snapshot(tensor_ops(stream, (2, 2), (2, 1), offset=1), PROTO4)))


def test_storage_with_missing_data_is_refused(tmp_path: Path) -> None:
    stream = legacy_storage_stream([1.0, 2.0], count=1000)  # claims 1000 floats, holds 2
    with pytest.raises(CheckpointError, match="storage size"):
        read_official_pickle(write(tmp_path, snapshot(tensor_ops(stream, (2,), (1,)), PROTO4)))


# ----------------------------------------------------------------------------- broken or foreign files


def test_missing_empty_and_non_pickle_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no file at"):
        read_official_pickle(tmp_path / "absent.pkl")
    with pytest.raises(CheckpointError, match="is empty"):
        read_official_pickle(write(tmp_path, b"", "empty.pkl"))
    with pytest.raises(CheckpointError, match="not a pickle file"):
        read_official_pickle(write(tmp_path, b"\x89PNG\r\n\x1a\n" + bytes(100), "image.pkl"))
    with pytest.raises(CheckpointError, match="not a pickle file"):
        read_official_pickle(write(tmp_path, b"just some text\n", "text.pkl"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(CheckpointError, match="zip archive"):
        read_official_pickle(write(tmp_path, buffer.getvalue(), "model.pkl"))
    with pytest.raises(CheckpointError, match="folder"):
        read_official_pickle(tmp_path)


def test_corrupt_pickle_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="corrupt|truncated"):
        read_official_pickle(write(tmp_path, PROTO4 + b"\xff\xfe garbage opcodes" + STOP, "garbage.pkl"))


def test_truncated_pickle_fails_clearly(tmp_path: Path) -> None:
    data = pickle.dumps({"G_ema": {"w": list(range(1000))}}, protocol=4)
    with pytest.raises(CheckpointError, match="truncated"):
        read_official_pickle(write(tmp_path, data[: len(data) // 2], "cut.pkl"))


@pytest.mark.skipif(not STEM.exists(), reason=f"official fixtures not found in {FIXTURES}")
@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.999])
def test_truncated_official_snapshot_fails_clearly(tmp_path: Path, fraction: float) -> None:
    data = STEM.read_bytes()
    path = write(tmp_path, data[: int(len(data) * fraction)], "cut.pkl")
    with pytest.raises(CheckpointError, match="truncated|corrupt"):
        load_official_generator(path)


def test_pickles_without_a_generator_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no 'G_ema' or 'G' entry"):
        read_official_generator(write(tmp_path, pickle.dumps({"D": None, "progress": {}}), "nogen.pkl"))
    with pytest.raises(CheckpointError, match="holds a list"):
        read_official_pickle(write(tmp_path, pickle.dumps([1, 2, 3]), "list.pkl"))
    with pytest.raises(CheckpointError, match="not a StyleGAN generator"):
        load_official_generator(write(tmp_path, pickle.dumps({"G_ema": {"weights": 1}}), "dictgen.pkl"))


def test_self_containing_generator_fails_clearly() -> None:
    record = PersistentRecord("Generator", None, {"_parameters": {}, "_buffers": {}, "_modules": {}})
    record.state["_modules"]["synthesis"] = record
    with pytest.raises(CheckpointError, match="contains itself"):
        official_generator_from_snapshot({"G_ema": record})
    nested: dict = {}
    nested["again"] = nested
    record = PersistentRecord("Generator", None, {"_parameters": {}, "_modules": {}, "layer_names": nested})
    with pytest.raises(CheckpointError, match="nest without end"):
        official_generator_from_snapshot({"G_ema": record})
