"""A pickle opcode interpreter with hard limits; what a name may do is left to a policy subclass.

Why not `pickle.Unpickler` with a restricted `find_class`: the C unpickler also trusts the file for
things that no allow-list of names covers. A tiny file can make it allocate a memo table of billions
of slots (`LONG_BINPUT 0xffffffff`), read a frame or a byte string of any claimed length, nest tuples
a million deep (hashing such a tuple as a dict key overflows the C stack and kills the process), and
`BUILD` calls `__setstate__` or `setattr` on whatever object is on the stack, including the loader's
own allowed globals (a function's `__defaults__`, a shared marker), which would outlive the load. This
machine reads the same opcodes (protocols 0-5) but:

- every length is checked against the bytes left in the file before anything is read or allocated;
- it executes at most `max_ops` opcodes and keeps at most `max_memo` memo entries, both derived from
  the file size (a real snapshot needs a few per kilobyte; a hostile file needs one per byte);
- what policies build from the file's values is charged to an allocation budget of twice the file
  size plus 64 MiB (`charge`), so copying one memoised value again and again cannot multiply memory;
- it tracks how deeply every container it builds nests and refuses beyond `MAX_DEPTH` (the fixtures
  written by the official code nest 20 to 24 levels). Tuples and frozensets, the values that get
  hashed, are tracked exactly; a list filled through the memo after it was nested can hide depth from
  this count, so the walks over loaded values (`records`) stop at the same limit;
- `REDUCE`, `NEWOBJ`, `BUILD`, `SETITEM(S)`, `APPEND(S)` and `ADDITEMS` go through methods a policy
  overrides (`call`, `new_object`, `build`, `set_items`, `append_items`); by default only plain
  containers this load created may be filled, and nothing may be called or built;
- opcodes no StyleGAN snapshot uses (`INST`, `OBJ`, `EXT1/2/4`, out-of-band buffers) are refused, and
  persistent ids go to `persistent_load`, which refuses unless the policy says otherwise.
"""

from __future__ import annotations

import codecs
import pickle
import struct
from typing import Any

from core.errors import CheckpointError

MAX_DEPTH = 200  # nesting levels a snapshot may use (official ones: 20-24)
HIGHEST_PROTOCOL = 5


class TooDeep(Exception):
    """A value nests deeper than MAX_DEPTH (raised by the walks over loaded values)."""


def max_ops_for(size: int) -> int:
    """Opcode budget for `size` bytes of pickle: ample for real snapshots, linear in the file size."""
    return 200_000 + size // 8


def max_memo_for(size: int) -> int:
    return 100_000 + size // 32


def alloc_budget_for(size: int) -> int:
    """Bytes that handlers may allocate from a `size`-byte pickle (a snapshot's tensors copy it once)."""
    return 64 * 2**20 + 2 * size


class Machine:
    """Runs one pickle stream from `data[start:]`; `load()` returns the value and the end position."""

    def __init__(self, data: Any, start: int = 0, end: int | None = None, source: str = "the file") -> None:
        self.data = data  # bytes, bytearray, memoryview or mmap: indexing gives ints, slicing gives bytes
        self.pos = start
        self.end = len(data) if end is None else end
        self.source = source
        size = self.end - start
        self.max_ops = max_ops_for(size)
        self.max_memo = max_memo_for(size)
        self.alloc_budget = self.alloc_left = alloc_budget_for(size)
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.proto = 0
        self._depth: dict[int, tuple[int, Any]] = {}  # id -> (nesting depth, the object kept alive)
        self._created: dict[int, Any] = {}  # objects returned by call/new_object during this load

    # ------------------------------------------------------------------ policy (overridden)

    def find_class(self, module: str, name: str) -> Any:
        raise CheckpointError(f"refused: {self.source} asks to run {module}.{name}; nothing was run")

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(f"refused: {self.source} holds a persistent reference that only code could resolve")

    def call(self, func: Any, args: tuple) -> Any:
        raise CheckpointError(f"refused: {self.source} calls {func!r}; nothing was run")

    def new_object(self, cls: Any, args: tuple, kwargs: dict) -> Any:
        raise CheckpointError(f"refused: {self.source} creates an object of {cls!r}; nothing was run")

    def build(self, inst: Any, state: Any) -> None:
        raise CheckpointError(f"refused: {self.source} sets the state of {type(inst).__name__} "
                              "(BUILD), which this reader never allows here")

    def set_items(self, target: Any, pairs: list[tuple[Any, Any]]) -> None:
        if not isinstance(target, dict):
            raise CheckpointError(f"refused: {self.source} stores items into a {type(target).__name__}")
        for key, value in pairs:
            target[key] = value

    def append_items(self, target: Any, items: list[Any]) -> None:
        if not isinstance(target, list):
            raise CheckpointError(f"refused: {self.source} appends items to a {type(target).__name__}")
        target.extend(items)

    # ------------------------------------------------------------------ bookkeeping for policies

    def charge(self, nbytes: int) -> None:
        """Count `nbytes` that a handler allocated; refuse once the file's allocation budget is spent."""
        self.alloc_left -= nbytes
        if self.alloc_left < 0:
            raise CheckpointError(f"refused: {self.source} asks for more memory than a file of its size can "
                                  f"need ({self.alloc_budget:,} bytes); it is not a snapshot")

    def created(self, obj: Any) -> Any:
        """Record `obj` as made by this load (BUILD may then give it state); returns it."""
        self._created[id(obj)] = obj
        return obj

    def was_created(self, obj: Any) -> bool:
        return self._created.get(id(obj)) is obj

    def depth(self, obj: Any) -> int:
        entry = self._depth.get(id(obj))
        return entry[0] if entry is not None and entry[1] is obj else 0

    def _set_depth(self, obj: Any, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise CheckpointError(f"refused: {self.source} nests values more than {MAX_DEPTH} levels deep "
                                  "(no snapshot does; the file is corrupt or hostile)")
        self._depth[id(obj)] = (depth, obj)

    def _new_container(self, obj: Any, items: Any) -> Any:
        self._set_depth(obj, 1 + max((self.depth(x) for x in items), default=0))
        return obj

    def _grow(self, target: Any, items: Any) -> None:
        """`target` received `items`: it is now at least one level deeper than each of them."""
        deepest = max((self.depth(x) for x in items), default=-1)
        if deepest + 1 > self.depth(target):
            self._set_depth(target, deepest + 1)

    # ------------------------------------------------------------------ reading

    def _read(self, n: int) -> bytes:
        if n < 0:
            raise pickle.UnpicklingError("negative length")
        if n > self.end - self.pos:
            if n < (1 << 20):
                raise EOFError
            # Checked before reading, so a claimed length never becomes an allocation.
            raise CheckpointError(f"refused: {self.source} declares a {n:,}-byte value with only "
                                  f"{self.end - self.pos:,} bytes left (truncated, or a hostile file)")
        start = self.pos
        self.pos += n
        return bytes(self.data[start:self.pos])

    def _byte(self) -> int:
        if self.pos >= self.end:
            raise EOFError
        b = self.data[self.pos]
        self.pos += 1
        return b

    def _readline(self) -> bytes:
        data = self.data
        start = pos = self.pos
        limit = min(self.end, start + (1 << 16))  # text opcodes hold names and numbers, never data
        while pos < limit and data[pos] != 0x0A:
            pos += 1
        if pos >= limit:
            raise EOFError if limit == self.end else pickle.UnpicklingError("a text opcode has no line end")
        self.pos = pos + 1
        return bytes(data[start:pos])

    def _uint(self, n: int) -> int:
        return int.from_bytes(self._read(n), "little", signed=False)

    # ------------------------------------------------------------------ the loop

    def pop_mark(self) -> list[Any]:
        if not self.metastack:
            raise pickle.UnpicklingError("MARK expected")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def load(self) -> tuple[Any, int]:
        ops = 0
        dispatch = _DISPATCH
        while True:
            ops += 1
            if ops > self.max_ops:
                raise CheckpointError(f"refused: {self.source} has more pickle operations than its size allows "
                                      f"({self.max_ops:,}); it is not a snapshot")
            code = self._byte()
            handler = dispatch.get(code)
            if handler is None:
                name = _REFUSED_OPS.get(code)
                if name:
                    raise CheckpointError(f"refused: {self.source} uses the pickle opcode {name}, which no "
                                          "StyleGAN snapshot needs; nothing was run")
                raise pickle.UnpicklingError(f"invalid load key, {chr(code)!r}")
            if handler is _op_stop:
                if len(self.stack) != 1 or self.metastack:
                    raise pickle.UnpicklingError("unbalanced stack at STOP")
                return self.stack[0], self.pos
            handler(self)

    def top(self) -> Any:
        if not self.stack:
            raise pickle.UnpicklingError("stack underflow")
        return self.stack[-1]

    def pop(self) -> Any:
        if not self.stack:
            raise pickle.UnpicklingError("stack underflow")
        return self.stack.pop()

    def memo_put(self, index: int, value: Any) -> None:
        if index not in self.memo and len(self.memo) >= self.max_memo:
            raise CheckpointError(f"refused: {self.source} uses more memo entries than its size allows "
                                  f"({self.max_memo:,}); it is not a snapshot")
        self.memo[index] = value

    def memo_get(self, index: int) -> Any:
        try:
            return self.memo[index]
        except KeyError:
            raise pickle.UnpicklingError(f"memo key {index} not found") from None


# ---------------------------------------------------------------------- opcode handlers


def _op_stop(m: Machine) -> None:  # handled in load()
    raise AssertionError


def _op_proto(m: Machine) -> None:
    proto = m._byte()
    if proto > HIGHEST_PROTOCOL:
        raise pickle.UnpicklingError(f"unsupported pickle protocol: {proto}")
    m.proto = proto


def _op_frame(m: Machine) -> None:
    # Frames only group opcodes for buffered reading; the whole file is addressable here.
    size = m._uint(8)
    if size > m.end - m.pos:
        raise EOFError if size < (1 << 20) else CheckpointError(
            f"refused: {m.source} declares a {size:,}-byte frame with only {m.end - m.pos:,} bytes left")


def _push(value: Any) -> Any:
    def op(m: Machine) -> None:
        m.stack.append(value)
    return op


def _op_int(m: Machine) -> None:
    line = m._readline()
    m.stack.append(False if line == b"00" else True if line == b"01" else int(line, 0))


def _op_binint(m: Machine) -> None:
    m.stack.append(struct.unpack("<i", m._read(4))[0])


def _op_binint1(m: Machine) -> None:
    m.stack.append(m._byte())


def _op_binint2(m: Machine) -> None:
    m.stack.append(m._uint(2))


def _op_long(m: Machine) -> None:
    line = m._readline()
    m.stack.append(int(line[:-1] if line.endswith(b"L") else line, 0))


def _op_long1(m: Machine) -> None:
    m.stack.append(int.from_bytes(m._read(m._byte()), "little", signed=True))


def _op_long4(m: Machine) -> None:
    n = struct.unpack("<i", m._read(4))[0]
    if n < 0:
        raise pickle.UnpicklingError("LONG pickle has negative byte count")
    m.stack.append(int.from_bytes(m._read(n), "little", signed=True))


def _op_float(m: Machine) -> None:
    m.stack.append(float(m._readline()))


def _op_binfloat(m: Machine) -> None:
    m.stack.append(struct.unpack(">d", m._read(8))[0])


def _op_string(m: Machine) -> None:
    line = m._readline()
    if len(line) < 2 or line[:1] != line[-1:] or line[:1] not in (b'"', b"'"):
        raise pickle.UnpicklingError("the STRING opcode argument must be quoted")
    m.stack.append(codecs.escape_decode(line[1:-1])[0].decode("ascii"))


def _op_binstring(m: Machine) -> None:
    n = struct.unpack("<i", m._read(4))[0]
    m.stack.append(m._read(n).decode("ascii"))


def _op_short_binstring(m: Machine) -> None:
    m.stack.append(m._read(m._byte()).decode("ascii"))


def _op_unicode(m: Machine) -> None:
    m.stack.append(m._readline().decode("raw-unicode-escape"))


def _unicode(width: int) -> Any:
    def op(m: Machine) -> None:
        m.stack.append(m._read(m._uint(width)).decode("utf-8", "surrogatepass"))
    return op


def _bytes(width: int) -> Any:
    def op(m: Machine) -> None:
        m.stack.append(m._read(m._uint(width)))
    return op


def _op_bytearray8(m: Machine) -> None:
    m.stack.append(bytearray(m._read(m._uint(8))))


def _op_empty(factory: Any) -> Any:
    def op(m: Machine) -> None:
        m.stack.append(factory())
    return op


def _op_mark(m: Machine) -> None:
    m.metastack.append(m.stack)
    m.stack = []


def _op_pop(m: Machine) -> None:
    if m.stack:
        m.stack.pop()
    else:
        m.pop_mark()


def _op_pop_mark(m: Machine) -> None:
    m.pop_mark()


def _op_dup(m: Machine) -> None:
    m.stack.append(m.top())


def _op_tuple(m: Machine) -> None:
    items = m.pop_mark()
    m.stack.append(m._new_container(tuple(items), items))


def _tuple_n(n: int) -> Any:
    def op(m: Machine) -> None:
        if len(m.stack) < n:
            raise pickle.UnpicklingError("stack underflow")
        items = m.stack[-n:]
        del m.stack[-n:]
        m.stack.append(m._new_container(tuple(items), items))
    return op


def _op_list(m: Machine) -> None:
    items = m.pop_mark()
    m.stack.append(m._new_container(list(items), items))


def _op_dict(m: Machine) -> None:
    items = m.pop_mark()
    if len(items) % 2:
        raise pickle.UnpicklingError("odd number of items for DICT")
    m.stack.append(m._new_container({items[i]: items[i + 1] for i in range(0, len(items), 2)}, items))


def _op_frozenset(m: Machine) -> None:
    items = m.pop_mark()
    m.stack.append(m._new_container(frozenset(items), items))


def _op_append(m: Machine) -> None:
    value = m.pop()
    target = m.top()
    m._grow(target, (value,))
    m.append_items(target, [value])


def _op_appends(m: Machine) -> None:
    items = m.pop_mark()
    target = m.top()
    m._grow(target, items)
    m.append_items(target, items)


def _op_setitem(m: Machine) -> None:
    value = m.pop()
    key = m.pop()
    target = m.top()
    m._grow(target, (key, value))
    m.set_items(target, [(key, value)])


def _op_setitems(m: Machine) -> None:
    items = m.pop_mark()
    if len(items) % 2:
        raise pickle.UnpicklingError("odd number of items for SETITEMS")
    target = m.top()
    m._grow(target, items)
    m.set_items(target, [(items[i], items[i + 1]) for i in range(0, len(items), 2)])


def _op_additems(m: Machine) -> None:
    items = m.pop_mark()
    target = m.top()
    if not isinstance(target, set):
        raise CheckpointError(f"refused: {m.source} adds set items to a {type(target).__name__}")
    m._grow(target, items)
    target.update(items)


def _op_put(m: Machine) -> None:
    m.memo_put(int(m._readline()), m.top())


def _op_binput(m: Machine) -> None:
    m.memo_put(m._byte(), m.top())


def _op_long_binput(m: Machine) -> None:
    m.memo_put(m._uint(4), m.top())


def _op_memoize(m: Machine) -> None:
    m.memo_put(len(m.memo), m.top())


def _op_get(m: Machine) -> None:
    m.stack.append(m.memo_get(int(m._readline())))


def _op_binget(m: Machine) -> None:
    m.stack.append(m.memo_get(m._byte()))


def _op_long_binget(m: Machine) -> None:
    m.stack.append(m.memo_get(m._uint(4)))


def _op_global(m: Machine) -> None:
    module = m._readline().decode("utf-8")
    name = m._readline().decode("utf-8")
    m.stack.append(m.find_class(module, name))


def _op_stack_global(m: Machine) -> None:
    name = m.pop()
    module = m.pop()
    if not isinstance(module, str) or not isinstance(name, str):
        raise pickle.UnpicklingError("STACK_GLOBAL requires str")
    m.stack.append(m.find_class(module, name))


def _op_reduce(m: Machine) -> None:
    args = m.pop()
    func = m.top()
    if not isinstance(args, tuple):
        raise pickle.UnpicklingError("REDUCE arguments are not a tuple")
    result = m.call(func, args)
    m._set_depth(result, max(m.depth(result), m.depth(args)))
    m.stack[-1] = result


def _op_newobj(m: Machine) -> None:
    args = m.pop()
    cls = m.pop()
    if not isinstance(args, tuple):
        raise pickle.UnpicklingError("NEWOBJ arguments are not a tuple")
    result = m.new_object(cls, args, {})
    m._set_depth(result, max(m.depth(result), m.depth(args)))
    m.stack.append(result)


def _op_newobj_ex(m: Machine) -> None:
    kwargs = m.pop()
    args = m.pop()
    cls = m.pop()
    if not isinstance(args, tuple) or not isinstance(kwargs, dict):
        raise pickle.UnpicklingError("NEWOBJ_EX arguments are not a tuple and a dict")
    result = m.new_object(cls, args, kwargs)
    m._set_depth(result, max(m.depth(result), m.depth(args) + 1, m.depth(kwargs) + 1))
    m.stack.append(result)


def _op_build(m: Machine) -> None:
    state = m.pop()
    inst = m.top()
    m._grow(inst, (state,))
    m.build(inst, state)


def _op_persid(m: Machine) -> None:
    m.stack.append(m.persistent_load(m._readline().decode("ascii")))


def _op_binpersid(m: Machine) -> None:
    m.stack.append(m.persistent_load(m.pop()))


_DISPATCH: dict[int, Any] = {
    pickle.PROTO[0]: _op_proto, pickle.FRAME[0]: _op_frame, pickle.STOP[0]: _op_stop,
    pickle.NONE[0]: _push(None), pickle.NEWTRUE[0]: _push(True), pickle.NEWFALSE[0]: _push(False),
    pickle.INT[0]: _op_int, pickle.BININT[0]: _op_binint, pickle.BININT1[0]: _op_binint1,
    pickle.BININT2[0]: _op_binint2, pickle.LONG[0]: _op_long, pickle.LONG1[0]: _op_long1,
    pickle.LONG4[0]: _op_long4, pickle.FLOAT[0]: _op_float, pickle.BINFLOAT[0]: _op_binfloat,
    pickle.STRING[0]: _op_string, pickle.BINSTRING[0]: _op_binstring,
    pickle.SHORT_BINSTRING[0]: _op_short_binstring, pickle.UNICODE[0]: _op_unicode,
    pickle.BINUNICODE[0]: _unicode(4), pickle.SHORT_BINUNICODE[0]: _unicode(1),
    pickle.BINUNICODE8[0]: _unicode(8), pickle.BINBYTES[0]: _bytes(4), pickle.SHORT_BINBYTES[0]: _bytes(1),
    pickle.BINBYTES8[0]: _bytes(8), pickle.BYTEARRAY8[0]: _op_bytearray8,
    pickle.EMPTY_TUPLE[0]: _op_empty(tuple), pickle.EMPTY_LIST[0]: _op_empty(list),
    pickle.EMPTY_DICT[0]: _op_empty(dict), pickle.EMPTY_SET[0]: _op_empty(set),
    pickle.MARK[0]: _op_mark, pickle.POP[0]: _op_pop, pickle.POP_MARK[0]: _op_pop_mark, pickle.DUP[0]: _op_dup,
    pickle.TUPLE[0]: _op_tuple, pickle.TUPLE1[0]: _tuple_n(1), pickle.TUPLE2[0]: _tuple_n(2),
    pickle.TUPLE3[0]: _tuple_n(3), pickle.LIST[0]: _op_list, pickle.DICT[0]: _op_dict,
    pickle.FROZENSET[0]: _op_frozenset, pickle.APPEND[0]: _op_append, pickle.APPENDS[0]: _op_appends,
    pickle.SETITEM[0]: _op_setitem, pickle.SETITEMS[0]: _op_setitems, pickle.ADDITEMS[0]: _op_additems,
    pickle.PUT[0]: _op_put, pickle.BINPUT[0]: _op_binput, pickle.LONG_BINPUT[0]: _op_long_binput,
    pickle.MEMOIZE[0]: _op_memoize, pickle.GET[0]: _op_get, pickle.BINGET[0]: _op_binget,
    pickle.LONG_BINGET[0]: _op_long_binget, pickle.GLOBAL[0]: _op_global, pickle.STACK_GLOBAL[0]: _op_stack_global,
    pickle.REDUCE[0]: _op_reduce, pickle.NEWOBJ[0]: _op_newobj, pickle.NEWOBJ_EX[0]: _op_newobj_ex,
    pickle.BUILD[0]: _op_build, pickle.PERSID[0]: _op_persid, pickle.BINPERSID[0]: _op_binpersid,
}
_REFUSED_OPS = {
    pickle.INST[0]: "INST", pickle.OBJ[0]: "OBJ", pickle.EXT1[0]: "EXT1", pickle.EXT2[0]: "EXT2",
    pickle.EXT4[0]: "EXT4", pickle.NEXT_BUFFER[0]: "NEXT_BUFFER", pickle.READONLY_BUFFER[0]: "READONLY_BUFFER",
}
assert not set(_DISPATCH) & set(_REFUSED_OPS)
