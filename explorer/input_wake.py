"""Wake the UI loop the moment the mouse moves or a button changes (X11: XInput 2 raw events).

Dear PyGui reads input only while it draws a frame, and the explorer's loop sleeps between frames (its own
frame cap: a 60 fps period while active, 100 ms when idle). Without a wake-up, a slider move that arrives
during the sleep waits for the rest of it before the frame that reads it even starts. This module watches
the pointer on a connection of its own and calls `on_input(x, y, buttons)` (root-window coordinates, the X
button mask) from a background thread after each burst of pointer events; the app decides whether to wake.

Why raw events: while a mouse button is held (every slider drag) the X server grabs the pointer for the
window that got the press, and ordinary motion events then go to that client only (GLFW inside Dear
PyGui). XInput >= 2.1 raw events go to every client that selected them on the root window, grab or not.
Where there is no X display, no libXi or no XInput 2.1 (Wayland without XWayland, a headless test),
`InputWake.start` returns None with the reason, and the loop keeps its plain frame cap.
"""

from __future__ import annotations

import ctypes
import os
import select
import threading
import traceback
from collections.abc import Callable

# XInput 2 event types (XI2.h).
XI_RAW_BUTTON_PRESS = 15
XI_RAW_BUTTON_RELEASE = 16
XI_RAW_MOTION = 17
XI_ALL_MASTER_DEVICES = 1
POINTER_BUTTONS_MASK = 0x1F00  # Button1Mask .. Button5Mask in an X key/button state


class _XIEventMask(ctypes.Structure):
    _fields_ = [("deviceid", ctypes.c_int), ("mask_len", ctypes.c_int), ("mask", ctypes.POINTER(ctypes.c_ubyte))]


def _libraries() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    """libX11 and libXi with the signatures used here (OSError when either is missing)."""
    x11, xi = ctypes.CDLL("libX11.so.6"), ctypes.CDLL("libXi.so.6")
    vp, ulong, c_int = ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int
    x11.XOpenDisplay.restype = vp
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    for name in ("XFlush", "XPending", "XConnectionNumber", "XCloseDisplay"):
        getattr(x11, name).argtypes = [vp]
    x11.XDefaultRootWindow.argtypes = [vp]
    x11.XDefaultRootWindow.restype = ulong
    x11.XNextEvent.argtypes = [vp, vp]
    x11.XQueryExtension.argtypes = [vp, ctypes.c_char_p, ctypes.POINTER(c_int), ctypes.POINTER(c_int),
                                    ctypes.POINTER(c_int)]
    x11.XQueryPointer.argtypes = [vp, ulong, ctypes.POINTER(ulong), ctypes.POINTER(ulong), ctypes.POINTER(c_int),
                                  ctypes.POINTER(c_int), ctypes.POINTER(c_int), ctypes.POINTER(c_int),
                                  ctypes.POINTER(ctypes.c_uint)]
    xi.XIQueryVersion.argtypes = [vp, ctypes.POINTER(c_int), ctypes.POINTER(c_int)]
    xi.XISelectEvents.argtypes = [vp, ulong, ctypes.POINTER(_XIEventMask), c_int]
    return x11, xi


def _query_pointer(x11: ctypes.CDLL, dpy: int, root: int) -> tuple[int, int, int]:
    """(x, y, button mask) of the pointer on `dpy`, root-window coordinates (a round trip to the server)."""
    root_ret, child = ctypes.c_ulong(), ctypes.c_ulong()
    rx, ry, wx, wy, state = ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.c_uint()
    x11.XQueryPointer(dpy, root, ctypes.byref(root_ret), ctypes.byref(child), ctypes.byref(rx), ctypes.byref(ry),
                      ctypes.byref(wx), ctypes.byref(wy), ctypes.byref(state))
    return rx.value, ry.value, state.value & POINTER_BUTTONS_MASK


class PointerQuery:
    """Where the pointer is now, asked of the X server on a connection of its own, for the thread that made it
    (an Xlib connection is not shared between threads: the watcher's belongs to its thread). The UI loop asks
    right before a frame while a slider, the seed pad or the view's pan is dragged (`Explorer.pointer_pos`): a
    round trip of ~0.1 ms, and, unlike the watcher's last report, never behind because the watcher waited for
    Python's interpreter lock."""

    def __init__(self, x11: ctypes.CDLL, dpy: int) -> None:
        self._x11, self._dpy = x11, dpy
        self._root = x11.XDefaultRootWindow(dpy)

    @classmethod
    def open(cls, display: str | None = None) -> PointerQuery | None:
        """None where there is no X display (or no libX11)."""
        display = display if display is not None else os.environ.get("DISPLAY")
        if not display:
            return None
        try:
            x11, _ = _libraries()
        except (OSError, AttributeError):
            return None
        dpy = x11.XOpenDisplay(display.encode())
        return cls(x11, dpy) if dpy else None

    def position(self) -> tuple[int, int, int]:
        """(x, y, button mask) of the pointer, root-window coordinates."""
        return _query_pointer(self._x11, self._dpy, self._root)

    def close(self) -> None:
        if self._dpy:
            self._x11.XCloseDisplay(self._dpy)
            self._dpy = None


class InputWake:
    """A thread that calls `on_input(x, y, buttons)` after each burst of pointer events on `display`."""

    def __init__(self, x11: ctypes.CDLL, dpy: int, on_input: Callable[[int, int, int], None]) -> None:
        self._x11, self._dpy, self._on_input = x11, dpy, on_input
        self._root = x11.XDefaultRootWindow(dpy)
        self._stop_r, self._stop_w = os.pipe()  # closing writes here: the thread's select() returns at once
        self.bursts = 0  # bursts of pointer events seen (tests, the Performance panel)
        self._thread = threading.Thread(target=self._run, name="input-wake", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, on_input: Callable[[int, int, int], None],
              display: str | None = None) -> tuple[InputWake | None, str]:
        """(watcher, "") or (None, why not). `display` defaults to $DISPLAY."""
        display = display if display is not None else os.environ.get("DISPLAY")
        if not display:
            return None, "no X display"
        try:
            x11, xi = _libraries()
        except (OSError, AttributeError) as e:
            return None, f"libX11/libXi not available ({e})"
        dpy = x11.XOpenDisplay(display.encode())
        if not dpy:
            return None, f"cannot open X display {display}"
        opcode, event, error = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        major, minor = ctypes.c_int(2), ctypes.c_int(1)  # 2.1: raw events reach us also during a grab
        if not x11.XQueryExtension(dpy, b"XInputExtension", ctypes.byref(opcode), ctypes.byref(event),
                                   ctypes.byref(error)):
            x11.XCloseDisplay(dpy)
            return None, "the X server has no XInput extension"
        if xi.XIQueryVersion(dpy, ctypes.byref(major), ctypes.byref(minor)) != 0 or (major.value, minor.value) < (2, 1):
            x11.XCloseDisplay(dpy)
            return None, f"the X server has XInput {major.value}.{minor.value}, raw events need 2.1"
        bits = (ctypes.c_ubyte * 4)()
        for ev in (XI_RAW_BUTTON_PRESS, XI_RAW_BUTTON_RELEASE, XI_RAW_MOTION):
            bits[ev >> 3] |= 1 << (ev & 7)
        mask = _XIEventMask(XI_ALL_MASTER_DEVICES, len(bits), bits)
        xi.XISelectEvents(dpy, x11.XDefaultRootWindow(dpy), ctypes.byref(mask), 1)
        x11.XFlush(dpy)
        return cls(x11, dpy, on_input), ""

    def pointer(self) -> tuple[int, int, int]:
        """(x, y, button mask) of the pointer, root-window coordinates (a round trip to the server)."""
        return _query_pointer(self._x11, self._dpy, self._root)

    def _run(self) -> None:
        fd = self._x11.XConnectionNumber(self._dpy)
        event = (ctypes.c_long * 24)()  # an XEvent (a union of 24 longs); the contents are not needed
        try:
            while True:
                # Xlib may already hold events read with an earlier reply: drain before sleeping.
                if not self._x11.XPending(self._dpy):
                    ready, _, _ = select.select([fd, self._stop_r], [], [])
                    if self._stop_r in ready:
                        return
                    if not self._x11.XPending(self._dpy):
                        continue
                while self._x11.XPending(self._dpy):
                    self._x11.XNextEvent(self._dpy, event)
                self.bursts += 1
                try:
                    self._on_input(*self.pointer())
                except Exception:  # a bug in the callback must not end the watching (nor go unseen)
                    traceback.print_exc()
        finally:
            self._x11.XCloseDisplay(self._dpy)

    def close(self, timeout: float = 2.0) -> None:
        if self._stop_w < 0:
            return
        os.write(self._stop_w, b"x")
        self._thread.join(timeout)
        if self._thread.is_alive():
            return  # (stuck in a round trip to a dead server: the daemon thread keeps its pipe)
        os.close(self._stop_w)
        os.close(self._stop_r)
        self._stop_w = self._stop_r = -1

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
