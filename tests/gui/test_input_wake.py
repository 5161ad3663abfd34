"""explorer.input_wake on a real X server (Xvfb): XInput 2 raw pointer events reach the watcher, also while
another client holds a pointer grab (what the X server does for the window under a held mouse button).

The pointer is moved through XTest, as a device would move it (`xdotool mousemove` warps the pointer, which
makes no raw event: no device moved)."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
import time

import pytest

from bench.explorer_latency import Pointer
from explorer.input_wake import InputWake, PointerQuery


def test_pointer_moves_reach_the_watcher_also_during_a_grab(xvfb: str) -> None:
    seen: list[tuple[int, int, int]] = []
    got = threading.Event()

    def on_input(x: int, y: int, buttons: int) -> None:
        seen.append((x, y, buttons))
        got.set()

    watcher, why = InputWake.start(on_input, display=xvfb)
    if watcher is None:
        pytest.skip(f"no input watcher on this X server: {why}")
    mouse = Pointer(xvfb, dict(os.environ, DISPLAY=xvfb))  # the benchmark's XTest pointer
    if mouse.how != "xtest":
        watcher.close()
        pytest.skip("libXtst is not installed (apt-get install libxtst6)")
    x11 = ctypes.CDLL("libX11.so.6")
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XGrabPointer.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    x11.XFlush.argtypes = x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    grabber = x11.XOpenDisplay(xvfb.encode())
    try:
        mouse.move(321, 123)
        assert got.wait(30), "no raw motion event reached the watcher"
        assert (321, 123) in [(x, y) for x, y, _ in seen]
        # Another client grabs the pointer (PointerMotionMask | ButtonPress/ReleaseMask, async, no confinement).
        assert x11.XGrabPointer(grabber, x11.XDefaultRootWindow(grabber), 0, (1 << 6) | (1 << 2) | (1 << 3),
                                1, 1, 0, 0, 0) == 0  # GrabSuccess
        x11.XFlush(grabber)
        got.clear()
        mouse.move(400, 200)
        assert got.wait(30), "no raw motion event during another client's grab"
        assert (400, 200) in [(x, y) for x, y, _ in seen]
        assert watcher.bursts >= 2
    finally:
        x11.XCloseDisplay(grabber)
        mouse.close()
        watcher.close()
    assert not watcher.alive


def test_no_watcher_without_a_usable_display(monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    watcher, why = InputWake.start(lambda x, y, b: None)
    assert watcher is None and why == "no X display"
    watcher, why = InputWake.start(lambda x, y, b: None, display=":987654")
    assert watcher is None and why


def test_pointer_query_reports_where_the_pointer_is_now(xvfb: str) -> None:
    """The UI loop's own connection (slider latching asks it right before a frame): device moves and warps alike,
    and the held buttons. (Another client's fake events reach the server on their own connection: each check
    waits, with a deadline, until the server has processed them.)"""
    query = PointerQuery.open(display=xvfb)
    assert query is not None
    mouse = Pointer(xvfb, dict(os.environ, DISPLAY=xvfb))

    def reaches(expected: tuple[int, ...], part: slice) -> None:
        deadline = time.time() + 30
        while query.position()[part] != expected:
            assert time.time() < deadline, f"the pointer query says {query.position()}, not {expected}"
            time.sleep(0.01)

    try:
        mouse.move(222, 111)  # XTest (or xdotool's warp where libXtst is missing): both move the pointer
        reaches((222, 111), slice(0, 2))
        if shutil.which("xdotool"):  # a warp: no device moved, the pointer did
            subprocess.run(["xdotool", "mousemove", "333", "44"], check=True, env=dict(os.environ, DISPLAY=xvfb),
                           timeout=20)
        else:
            mouse.move(333, 44)
        reaches((333, 44), slice(0, 2))
        mouse.button(True)
        reaches((1 << 8,), slice(2, 3))  # Button1Mask
        mouse.button(False)
        reaches((0,), slice(2, 3))
    finally:
        mouse.close()
        query.close()
    assert PointerQuery.open(display="") is None
