"""Hostile and broken official pickles: bounded memory, time and nesting, nothing changed, one clear error.

Each file here is tiny and hand-written (or written with real `dill`) to attack one limit of the reader:
claimed lengths, memo size, opcode count, nesting, copies of memoised values, BUILD on the reader's
own objects, strided tensor views, numpy object arrays, and dill's helpers. Each must end in a
`CheckpointError` (one `error:` line from the CLI, exit 2) without allocating what the file asks for.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import tracemalloc
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from core.cli import main
from core.errors import CheckpointError
from core.io.official import (
    PersistentRecord,
    describe_official,
    generator_from_official,
    load_official_checkpoint,
    official_generator_from_snapshot,
    read_official_generator,
    read_official_pickle,
)
from core.io.official import tensors as official_tensors
from core.io.official import unpickler as official_unpickler
from tests.helpers import OFFICIAL_FIXTURES, REPO, install_persistence_stand_in, writable_official
from tests.pickle_ops import (
    EMPTY_DICT,
    MARK,
    NEWFALSE,
    NONE,
    PROTO2,
    PROTO4,
    SETITEM,
    STOP,
    TUPLE,
    TUPLE1,
    legacy_storage_stream,
    op_bytes,
    op_call,
    op_global,
    op_int,
    op_str,
    op_tuple,
    snapshot,
    tensor_ops,
    write,
)

STEM = OFFICIAL_FIXTURES / "sgxl_tiny16_c10.pkl"
needs_stem = pytest.mark.skipif(not STEM.exists(), reason=f"official fixture {STEM} not found")
BUILD, APPEND, EMPTY_LIST, MEMOIZE, POP = b"b", b"a", b"]", b"\x94", b"0"


def op_binget(i: int) -> bytes:
    return b"h" + bytes([i])


def refused_with_bounded_memory(path: Path, match: str, limit_mb: float = 50) -> None:
    """`read_official_pickle(path)` raises CheckpointError matching `match`, peaking under `limit_mb`."""
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=match):
            read_official_pickle(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit_mb * 2**20, f"peak {peak / 2**20:.0f} MB"


def cli_error(path: Path, capsys: pytest.CaptureFixture) -> str:
    """`sgxl info path` in this process: exit code 2 and exactly one `error:` line, returned."""
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def cli_info_subprocess(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.cli", "info", str(path)], capture_output=True, text=True,
                          cwd=REPO, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


# ----------------------------------------------------------------------------- lengths, memo, opcode count


@pytest.mark.parametrize("opcode", [b"\x8e", b"\x8d", b"\x96", b"\x95"])  # BINBYTES8 BINUNICODE8 BYTEARRAY8 FRAME
def test_claimed_lengths_are_checked_before_reading(tmp_path: Path, opcode: bytes) -> None:
    data = PROTO4 + opcode + struct.pack("<Q", 10**12) + b"x" * 100 + STOP
    refused_with_bounded_memory(write(tmp_path, data), r"declares a 1,000,000,000,000-byte .* bytes left")


def test_a_huge_memo_index_allocates_nothing(tmp_path: Path) -> None:
    # The C unpickler sizes its memo table by the largest index: LONG_BINPUT 0xffffffff = 32 GB of slots.
    data = snapshot(op_str("x") + b"r" + struct.pack("<I", 0xFFFFFFFF) + POP + b"j" + struct.pack("<I", 0xFFFFFFFF))
    tracemalloc.start()
    try:
        assert read_official_pickle(write(tmp_path, data)) == {"G_ema": "x"}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20


def test_memo_entries_are_bounded_by_the_file_size(tmp_path: Path) -> None:
    data = snapshot(NONE + (MEMOIZE * 300_000))  # 300k entries from a 300 kB file
    refused_with_bounded_memory(write(tmp_path, data), "more memo entries than its size allows")


def test_opcode_count_is_bounded_by_the_file_size(tmp_path: Path) -> None:
    data = snapshot(NONE + (NONE + POP) * 500_000)  # 1M opcodes from 1 MB
    refused_with_bounded_memory(write(tmp_path, data), "more pickle operations than its size allows")


@pytest.mark.parametrize("call", [
    op_call(op_global("builtins", "bytearray"), op_int(2**31 - 1)),  # bytearray(2 GB) from 40 bytes
    op_call(op_global("__builtin__", "bytearray"), op_int(2**31 - 1)),
    op_call(op_global("builtins", "list"), op_bytes(b"x" * 1000)),  # list(bytes): 8x the bytes, per call
    op_call(op_global("torch", "Size"), op_bytes(b"x" * 1000)),
])
def test_builtin_constructors_only_take_containers(tmp_path: Path, call: bytes) -> None:
    refused_with_bounded_memory(write(tmp_path, snapshot(call)), "refused: unexpected")


def test_copies_of_one_memoised_value_are_charged_to_a_budget(tmp_path: Path) -> None:
    # 4 MB of bytes once, then bytearray(<them>) 100 times: 400 MB of copies from a 4 MB file.
    copy = op_call(op_global("builtins", "bytearray"), op_binget(0))
    data = snapshot(op_bytes(b"x" * 4 * 2**20) + MEMOIZE + POP + EMPTY_LIST + MARK + copy * 100 + b"e")
    refused_with_bounded_memory(write(tmp_path, data), "more memory than a file of its size can need",
                                limit_mb=200)


# ----------------------------------------------------------------------------- nesting


def test_deep_tuples_are_refused_instead_of_crashing_the_process(tmp_path: Path) -> None:
    # A 1 MB file: (((...1...),),) a million deep as a dict key. Hashing it overflowed the C stack
    # (segmentation fault) when the C unpickler stored it; run in a subprocess so a regression cannot
    # take the test session down with it.
    path = write(tmp_path, PROTO2 + EMPTY_DICT + op_int(1) + TUPLE1 * 1_000_000 + op_int(2) + SETITEM + STOP)
    result = cli_info_subprocess(path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: refused")
    assert "nests values more than" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("value", [
    EMPTY_LIST * 100_000 + APPEND * 99_999,  # [[[...]]]
    MARK * 5_000 + TUPLE * 5_000,  # MARK-nested tuples
    b"\x8f" + MARK + op_int(1) + b"\x90" + TUPLE1 * 300,  # a set holding 1, in 300 nested tuples
])
def test_deep_nesting_is_one_clear_error(tmp_path: Path, value: bytes) -> None:
    with pytest.raises(CheckpointError, match="nests values more than 200 levels deep"):
        read_official_pickle(write(tmp_path, snapshot(value)))


def test_nesting_hidden_by_memo_tricks_is_caught_by_the_walk(tmp_path: Path, capsys) -> None:
    # Lists filled after they were nested (through the memo) keep a stale depth in the machine; the
    # walk over the generator's attributes still stops at the limit with one clear error.
    n = 5_000
    chain = b"".join(EMPTY_LIST + b"r" + struct.pack("<I", i) + POP for i in range(n + 1))
    chain += b"".join(b"j" + struct.pack("<I", i) + b"j" + struct.pack("<I", i - 1) + APPEND + POP
                      for i in range(n, 0, -1))
    state = EMPTY_DICT + op_str("_parameters") + EMPTY_DICT + SETITEM + op_str("layer_names") \
        + b"j" + struct.pack("<I", n) + SETITEM
    meta = EMPTY_DICT + op_str("type") + op_str("class") + SETITEM + op_str("class_name") + op_str("Generator") \
        + SETITEM + op_str("state") + state + SETITEM
    record = op_call(op_global("torch_utils.persistence", "_reconstruct_persistent_obj"), meta)
    path = write(tmp_path, PROTO4 + chain + EMPTY_DICT + op_str("G_ema") + record + SETITEM + STOP)
    assert isinstance(read_official_pickle(path)["G_ema"], PersistentRecord)
    with pytest.raises(CheckpointError, match="nest without end"):
        read_official_generator(path)
    assert "nest without end" in cli_error(path, capsys)


def test_values_shared_many_times_cannot_multiply_a_walk() -> None:
    # "Billion laughs": 1000 references to 1000 references to 1000 references: 10^9 values from 3000.
    level = [0.5] * 1000
    for _ in range(2):
        level = [level] * 1000
    record = PersistentRecord("Generator", None, {"_parameters": {}, "_modules": {}, "layer_names": level})
    with pytest.raises(CheckpointError, match="more than 2,000,000 values"):
        official_generator_from_snapshot({"G_ema": record})
    shared = PersistentRecord("Layer", None, {"_parameters": {}, "_modules": {}, "x": list(range(100))})
    for _ in range(30):  # a module DAG: every level holds the previous one twice (2^30 paths)
        shared = PersistentRecord("Layer", None, {"_parameters": {}, "_modules": {"a": shared, "b": shared}})
    with pytest.raises(CheckpointError, match="more than 2,000,000 values"):
        official_generator_from_snapshot({"G_ema": shared})


# ----------------------------------------------------------------------------- BUILD and items on our own objects


def _global_state() -> dict:
    """Everything a crafted BUILD or SETITEM could try to change in the reader's shared objects."""
    f = official_tensors._rebuild_tensor_v2
    state = {"defaults": f.__defaults__, "dict": dict(f.__dict__), "float64": np.dtype("f8").str,
             "stub": dict(vars(official_unpickler.InertObject))}
    for key, value in official_unpickler._ALLOWED.items():
        state[key] = (type(value), dict(getattr(value, "__dict__", {})))
    return state


@pytest.mark.parametrize("target", [
    op_global("torch._utils", "_rebuild_tensor_v2"),  # a handler function: its __defaults__
    op_global("builtins", "object"),  # a shared marker
    op_global("torch", "Tensor"),
    op_global("torch", "float32"),
    op_global("collections", "OrderedDict"),
    op_global("torch.nn.modules.linear", "Linear"),  # a stub class
    op_global("dill._dill", "_get_attr"),
])
@pytest.mark.parametrize("how", ["build", "setitem"])
def test_the_readers_own_objects_cannot_be_changed(tmp_path: Path, target: bytes, how: str) -> None:
    before = _global_state()
    slots = op_tuple(NONE, EMPTY_DICT + op_str("__defaults__") + op_tuple(op_int(7)) + SETITEM
                     + op_str("__class__") + op_global("builtins", "object") + SETITEM
                     + op_str("label") + op_str("pwned") + SETITEM)
    if how == "build":
        ops, match = target + slots + BUILD, "changes the state of .* that it did not create"
    else:
        ops, match = target + op_str("label") + op_str("pwned") + SETITEM, "stores items into"
    with pytest.raises(CheckpointError, match=match):
        read_official_pickle(write(tmp_path, snapshot(ops)))
    assert _global_state() == before


def test_dtype_state_may_set_only_the_byte_order_of_a_copy(tmp_path: Path) -> None:
    dtype = op_call(op_global("numpy", "dtype"), op_str("f8"), NEWFALSE, NEWFALSE)
    state = op_tuple(op_int(3), op_str(">"), NONE, NONE, NONE, op_int(-1), op_int(-1), op_int(0))
    got = read_official_pickle(write(tmp_path, snapshot(dtype + state + BUILD)))["G_ema"]
    assert got == np.dtype(">f8")
    assert np.dtype("f8").str == "<f8" and np.dtype(np.float64).byteorder == "="  # numpy's own, untouched
    # Any other field (here the flags, which tell numpy whether items hold Python objects) is refused.
    flags = op_tuple(op_int(3), op_str("<"), NONE, NONE, NONE, op_int(-1), op_int(-1), op_int(1))
    with pytest.raises(CheckpointError, match="only the byte order"):
        read_official_pickle(write(tmp_path, snapshot(dtype + flags + BUILD)))


@needs_stem
def test_a_second_load_behaves_identically(tmp_path: Path) -> None:
    first = describe_official(STEM)
    z = torch.randn(2, 64)
    with torch.no_grad():
        img = generator_from_official(read_official_generator(STEM))(z, torch.tensor([1, 2]))
    for target in (op_global("torch._utils", "_rebuild_tensor_v2"), op_global("builtins", "object")):
        slots = op_tuple(NONE, EMPTY_DICT + op_str("__defaults__") + op_tuple(NONE) + SETITEM)
        with pytest.raises(CheckpointError):
            read_official_pickle(write(tmp_path, snapshot(target + slots + BUILD)))
    assert describe_official(STEM) == first
    with torch.no_grad():
        assert torch.equal(generator_from_official(read_official_generator(STEM))(z, torch.tensor([1, 2])), img)


# ----------------------------------------------------------------------------- tensors and numpy


@pytest.mark.parametrize("size, stride, match", [
    ((10**6, 10**6), (0, 0), "views 1,000,000,000,000 elements of a storage that holds 4"),  # a 4 TB copy
    ((3, 4), (1, 0), "views 12 elements"),  # overlapping rows
    ((10**9, 0), (1, 1), "refused: a tensor of shape"),  # empty, but 10^9 rows as soon as it is listed
])
def test_strided_views_beyond_the_storage_are_refused(tmp_path: Path, size: tuple, stride: tuple, match: str) -> None:
    stream = legacy_storage_stream([1.0, 2.0, 3.0, 4.0])
    refused_with_bounded_memory(write(tmp_path, snapshot(tensor_ops(stream, size, stride), PROTO4)), match)


def _np_array(dtype_code: str, shape: tuple, raw: bytes) -> bytes:
    array = op_call(op_global("numpy.core.multiarray", "_reconstruct"), op_global("numpy", "ndarray"),
                    op_tuple(op_int(0)), op_bytes(b"b"))
    dtype = op_call(op_global("numpy", "dtype"), op_str(dtype_code), NEWFALSE, NEWFALSE)
    return array + op_tuple(op_int(1), op_tuple(*map(op_int, shape)), dtype, NEWFALSE, op_bytes(raw)) + BUILD


def test_numpy_arrays_are_rebuilt_only_as_numpy_writes_them(tmp_path: Path) -> None:
    got = read_official_pickle(write(tmp_path, snapshot(_np_array("<i4", (2,), struct.pack("<2i", 7, -3)))))
    assert got["G_ema"].tolist() == [7, -3]
    for code, shape, raw, match in [
        ("O", (1,), b"\0" * 8, "Python objects"),
        ("f8,O", (1,), b"\0" * 16, "Python objects"),
        ("V8", (1,), b"\0" * 8, "is not read"),
        ("<i4", (3,), b"\0" * 8, "does not match"),  # raw bytes shorter than the shape
        ("U0", (10**9,), b"", "is not read"),  # zero-size items: no bytes, 10^9 values
    ]:
        with pytest.raises(CheckpointError, match=match):
            read_official_pickle(write(tmp_path, snapshot(_np_array(code, shape, raw))))


def test_progress_counters_of_the_wrong_shape_are_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not STEM.exists():
        pytest.skip(f"official fixture {STEM} not found")
    fn = install_persistence_stand_in(monkeypatch, lambda meta: None)
    data = read_official_pickle(STEM)
    snap = {"G_ema": writable_official(data["G_ema"], fn), "progress": {"cur_nimg": torch.zeros(3)}}
    path = write(tmp_path, pickle.dumps(snap, protocol=4), "progress.pkl")
    text = describe_official(path)
    assert "trained" not in text and "conversion       supported" in text
    assert "kimg" not in load_official_checkpoint(path).meta


# ----------------------------------------------------------------------------- dill's forms of the attacks

dill = pytest.importorskip("dill")


class _LambdaPayload:
    """Unpickling calls a lambda that dill rebuilds from its code (_create_function/_create_code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        marker = self.marker
        return (lambda: os.system(f"touch {marker}")), ()


class _FunctionTypePayload:
    """types.FunctionType(code, globals) through dill's _load_type('FunctionType'), then called."""

    def __init__(self, marker: Path) -> None:
        self.code = compile(f"__import__('os').system('touch {marker}')", "<payload>", "exec")

    def __call__(self) -> None:  # only so that pickle accepts it in a reduce's function slot
        raise AssertionError

    def __reduce__(self) -> tuple:
        return types.FunctionType, (self.code, {})  # builtins come from the caller's frame


class _CallIt:
    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


class _GetAttr:
    """dill._dill._get_attr(<module>, name): dill's own way to name a module attribute."""

    def __init__(self, module: types.ModuleType, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self) -> None:
        raise AssertionError

    def __reduce__(self) -> tuple:
        return dill._dill._get_attr, (self.module, self.name)


def _payloads(marker: Path) -> list[tuple[str, object, dict, str]]:
    """(name, object whose unpickling runs `touch marker`, dill.dumps options, expected refusal)."""
    cmd = f"touch {marker}"
    return [
        ("os.system by reference", _CallIt(os.system, cmd), {}, r"asks to run (posix|nt|os)\.system"),
        ("lambda", _LambdaPayload(marker), {}, "refused"),
        ("lambda, recurse", _LambdaPayload(marker), {"recurse": True}, "refused"),
        ("FunctionType", _CallIt(_FunctionTypePayload(marker)), {}, "calls an object it rebuilt"),
        ("_get_attr(os)", _CallIt(_GetAttr(os, "system"), cmd), {}, "imports the module 'os'"),
        ("_get_attr(builtins.eval)", _CallIt(_GetAttr(sys.modules["builtins"], "eval"),
                                             f"__import__('os').system({cmd!r})"), {}, r"asks to run builtins\.eval"),
    ]


@pytest.mark.parametrize("index", range(6))
def test_dill_payloads_run_under_dill_but_are_refused_here(tmp_path: Path, index: int, capsys) -> None:
    marker = tmp_path / "pwned"
    name, payload, options, match = _payloads(marker)[index]
    data = dill.dumps({"G_ema": payload}, **options)
    dill.loads(data)  # control: the payload is live under the official loader's unpickler
    assert marker.exists(), name
    marker.unlink()
    path = write(tmp_path, data)
    with pytest.raises(CheckpointError, match=match):
        read_official_pickle(path)
    assert cli_error(path, capsys).startswith("error: refused")
    assert not marker.exists()


def test_dill_create_array_accepts_only_numpys_reconstruct(tmp_path: Path) -> None:
    ok = dill.dumps({"G_ema": np.arange(3, dtype=np.int64)}, protocol=4)
    assert b"_create_array" in ok
    assert read_official_pickle(write(tmp_path, ok, "ok.pkl"))["G_ema"].tolist() == [0, 1, 2]
    bad = dill.dumps({"G_ema": np.array([object(), 1], dtype=object)}, protocol=4)
    with pytest.raises(CheckpointError, match="Python objects|refused"):
        read_official_pickle(write(tmp_path, bad, "objects.pkl"))
    # _create_array(<anything else>, ...): the constructor must be numpy's own.
    evil = op_call(op_global("dill._dill", "_create_array"), op_global("builtins", "bytearray"),
                   op_tuple(op_int(10)), NONE, NONE)
    with pytest.raises(CheckpointError, match="unexpected constructor"):
        read_official_pickle(write(tmp_path, snapshot(evil), "evil.pkl"))


@needs_stem
def test_a_dill_snapshot_with_a_payload_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real stem re-saved with dill converts; the same snapshot with a payload in D is refused."""
    fn = install_persistence_stand_in(monkeypatch, lambda meta: None)
    data = read_official_pickle(STEM)
    snap = {"G": None, "G_ema": writable_official(data["G_ema"], fn), "training_set_kwargs": {"resolution": 16},
            "progress": {"cur_nimg": torch.tensor([12000])}}
    clean = write(tmp_path, dill.dumps(snap, protocol=4), "clean.pkl")
    z = torch.randn(2, 64)
    with torch.no_grad():
        ours = load_official_checkpoint(clean)
        assert ours.meta["kimg"] == 12.0
        assert torch.equal(ours.generator(z, torch.tensor([3, 4])),
                           generator_from_official(read_official_generator(STEM))(z, torch.tensor([3, 4])))
    marker = tmp_path / "pwned"
    for name, payload, options, match in _payloads(marker):
        snap["D"] = payload  # where the discriminator is; read but never used by the importer
        evil = write(tmp_path, dill.dumps(snap, protocol=4, **options), "evil.pkl")
        with pytest.raises(CheckpointError, match=match):
            load_official_checkpoint(evil)
        assert not marker.exists(), name


def test_each_refusal_is_one_cli_error_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    stream = legacy_storage_stream([1.0, 2.0, 3.0, 4.0])
    hostile = {
        "claimed_length": PROTO4 + b"\x8e" + struct.pack("<Q", 10**12) + STOP,
        "memo": snapshot(NONE + MEMOIZE * 200_000),
        "build_on_a_handler": snapshot(op_global("torch._utils", "_rebuild_tensor_v2")
                                       + op_tuple(NONE, EMPTY_DICT) + BUILD),
        "zero_strides": snapshot(tensor_ops(stream, (10**6, 10**6), (0, 0)), PROTO4),
        "object_dtype": snapshot(op_call(op_global("numpy", "dtype"), op_str("O"), NEWFALSE, NEWFALSE)),
        "deep_lists": snapshot(EMPTY_LIST * 10_000 + APPEND * 9_999),
    }
    for name, data in hostile.items():
        path = write(tmp_path, data, f"{name}.pkl")
        out, png = tmp_path / f"{name}.sgxl", tmp_path / f"{name}.png"
        for argv in (["info", str(path)], ["convert", str(path), "--out", str(out)],
                     ["generate", "--ckpt", str(path), "--seeds", "0", "--out", str(png)]):
            assert main(argv) == 2, (name, argv[0])
            err = capsys.readouterr().err
            assert err.startswith("error: refused") and err.count("\n") == 1, (name, argv[0], err)
        assert not out.exists() and not png.exists()
