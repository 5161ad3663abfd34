"""The explorer's main view as an OpenGL texture: each new frame goes to the GPU once, as uint8 RGBA.

Why: Dear PyGui's raw textures take float32 only, and Dear PyGui re-uploads every raw texture on every
UI frame, new frame or not (measured under Xvfb + llvmpipe: 9-11 ms a UI frame at 1024x1024, against
~0.1 ms for one uint8 RGBA `glTexSubImage2D`). A *static* texture is uploaded once, when Dear PyGui
first draws its texture registry, and then left alone; so this module writes new frames into a static
texture itself, with PyOpenGL, in Dear PyGui's own GL context (current on the UI thread between frames,
since Dear PyGui renders on that thread).

Dear PyGui does not hand out GL texture names, so the texture is found once per size: create a static
texture filled with a random marker pattern, let Dear PyGui draw one frame (which creates it), then look
among the newest GL texture names for the one whose size matches and whose texels read back as exactly
the marker (uint8 k -> float k/255 -> unorm8 k is exact). Only then does the image widget switch to it,
already holding the new frame, so the marker is never shown.

Frame paths (`FrameView.path`):
  "gl"       host uint8 RGBA -> glTexSubImage2D from client memory;
  "gl-pbo"   host uint8 RGBA -> pixel-buffer object -> texture (chosen per size when it measured faster);
  "cuda-gl"  a CUDA uint8 RGBA tensor -> pixel-buffer object registered with CUDA (a device-to-device
             copy, no host round trip) -> texture; needs an NVIDIA GL context and `cuda-bindings`;
  "raw"      Dear PyGui's float32 RGB raw texture and `set_value`: the fallback when anything about the
             GL path fails (one log line), and the path of a Dear PyGui context without a window.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dearpygui.dearpygui as dpg
import numpy as np

if TYPE_CHECKING:
    import torch

    from explorer.renderer import Frame

FRAME_PATHS = ("auto", "gl", "gl-pbo", "raw")  # what `--frame-path` accepts ("auto" adds "cuda-gl" on NVIDIA)
FIND_TRIES = 3  # UI frames to wait for Dear PyGui to create a new static texture before giving up
SCAN_NAMES = 4096  # how many of the newest GL texture names to search for it
CALIBRATION_UPLOADS = 3  # per path, once per texture size, to decide whether the PBO is faster
FAULT_ENV = "SGXL_GL_FRAMES_FAULT"  # tests: make the stage named here fail ("enable", "find", "upload")


class GLFramesError(RuntimeError):
    """Something about the OpenGL frame path did not work; the view falls back to raw textures."""


def _fault(stage: str) -> None:
    """Tests force the fallback at a chosen stage, to check it shows the same pixels."""
    if os.environ.get(FAULT_ENV) == stage:
        raise GLFramesError(f"{FAULT_ENV}={stage}")


def _log_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _int(value: Any) -> int:
    """PyOpenGL returns GL integers as ints or 1-element arrays, depending on the call."""
    return int(np.asarray(value).reshape(-1)[0])


def frame_shape(frame: Frame) -> tuple[int, int]:
    """(H, W) of a frame."""
    pixels = frame.rgba if frame.rgba is not None else frame.rgb
    return int(pixels.shape[0]), int(pixels.shape[1])


def host_rgba(frame: Frame) -> np.ndarray:
    """The frame as uint8 [H, W, 4] RGBA on the host (the renderer's hand-over format)."""
    if frame.rgba is not None:
        return frame.rgba
    # Only frames made without the renderer (tests) lack it; converting here costs ~10 ms at 1024^2.
    u8 = frame.to_uint8()
    return np.concatenate([u8, np.full(u8.shape[:2] + (1,), 255, np.uint8)], axis=2)


def raw_rgb(frame: Frame) -> np.ndarray:
    """The frame as a flat float32 RGB array in [0, 1], what Dear PyGui's raw texture takes."""
    if frame.rgb is not None:
        return frame.rgb.reshape(-1)
    return (host_rgba(frame)[..., :3].astype(np.float32) / 255.0).reshape(-1)


@dataclass
class _Texture:
    tag: int | str  # the Dear PyGui static texture item
    shape: tuple[int, int]  # (H, W)
    name: int = 0  # its GL texture name, 0 until found
    marker: np.ndarray | None = None  # uint8 [H, W, 4] it was created with (until found)
    tries: int = 0
    use_pbo: bool | None = None  # None until measured for this size


class _GL:
    """The few PyOpenGL entry points used, imported lazily (a missing or broken PyOpenGL = fallback)."""

    def __init__(self) -> None:
        from OpenGL import GL

        self.GL = GL

    def info(self) -> dict[str, str]:
        GL = self.GL
        out = {}
        for key, enum in (("vendor", GL.GL_VENDOR), ("renderer", GL.GL_RENDERER), ("version", GL.GL_VERSION)):
            value = GL.glGetString(enum)
            if not value:
                raise GLFramesError("no current OpenGL context on the UI thread")
            out[key] = value.decode(errors="replace")
        return out

    def saved_state(self) -> tuple[int, int]:
        GL = self.GL
        return _int(GL.glGetIntegerv(GL.GL_UNPACK_ALIGNMENT)), _int(GL.glGetIntegerv(GL.GL_PACK_ALIGNMENT))

    def restore(self, state: tuple[int, int]) -> None:
        """Unbind what this module bound and put the pixel-store settings back.

        Bindings go to 0 rather than back to what was bound: that may be a texture just deleted, and
        binding a deleted name would create a new texture under it. Dear PyGui binds what it draws.
        """
        GL = self.GL
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, 0)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, state[0])
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, state[1])

    def find_texture(self, shape: tuple[int, int], marker: np.ndarray) -> int:
        """The GL name of the texture of `shape` holding exactly `marker` (newest names first); 0 if none."""
        GL = self.GL
        h, w = shape
        # The name glGenTextures hands out next is next to the newest ones (Mesa counts up; a driver that
        # reuses freed names hands out a low one): search down from there first, then up. The probe name is
        # freed again at once (a name never bound is not a texture).
        top = _int(GL.glGenTextures(1))
        GL.glDeleteTextures([top])
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        down = range(top + 64, max(0, top - SCAN_NAMES), -1)
        up = range(top + 65, top + SCAN_NAMES)
        for name in (*down, *up):
            if not GL.glIsTexture(name):
                continue
            GL.glBindTexture(GL.GL_TEXTURE_2D, name)
            if (_int(GL.glGetTexLevelParameteriv(GL.GL_TEXTURE_2D, 0, GL.GL_TEXTURE_WIDTH)) != w
                    or _int(GL.glGetTexLevelParameteriv(GL.GL_TEXTURE_2D, 0, GL.GL_TEXTURE_HEIGHT)) != h):
                continue
            texels = GL.glGetTexImage(GL.GL_TEXTURE_2D, 0, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE)
            if np.array_equal(np.frombuffer(texels, np.uint8).reshape(h, w, 4), marker):
                return name
        return 0

    def read_texture(self, name: int, shape: tuple[int, int]) -> np.ndarray:
        """uint8 [H, W, 4]: what texture `name` holds (tests and benchmarks check uploads with it)."""
        GL = self.GL
        state = self.saved_state()
        try:
            GL.glBindTexture(GL.GL_TEXTURE_2D, name)
            GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
            texels = GL.glGetTexImage(GL.GL_TEXTURE_2D, 0, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE)
            return np.frombuffer(texels, np.uint8).reshape(*shape, 4).copy()
        finally:
            self.restore(state)

    def tex_sub_image(self, name: int, shape: tuple[int, int], pixels: np.ndarray | None) -> None:
        """Write uint8 RGBA into texture `name`: from `pixels`, or (None) from the bound unpack buffer."""
        GL = self.GL
        h, w = shape
        GL.glBindTexture(GL.GL_TEXTURE_2D, name)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
        ptr = None if pixels is None else pixels.ctypes.data_as(ctypes.c_void_p)
        GL.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, 0, w, h, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, ptr)

    def pbo_upload(self, pbo: int, name: int, shape: tuple[int, int], pixels: np.ndarray) -> None:
        """Host pixels -> buffer (orphaned first, so the driver need not wait for the last upload) -> texture."""
        GL = self.GL
        GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, pbo)
        GL.glBufferData(GL.GL_PIXEL_UNPACK_BUFFER, pixels.nbytes, None, GL.GL_STREAM_DRAW)
        GL.glBufferSubData(GL.GL_PIXEL_UNPACK_BUFFER, 0, pixels.nbytes, pixels.ctypes.data_as(ctypes.c_void_p))
        self.tex_sub_image(name, shape, None)
        GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, 0)

    def new_buffer(self, nbytes: int) -> int:
        GL = self.GL
        pbo = int(GL.glGenBuffers(1))
        GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, pbo)
        GL.glBufferData(GL.GL_PIXEL_UNPACK_BUFFER, nbytes, None, GL.GL_STREAM_DRAW)
        GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, 0)
        return pbo

    def delete_buffer(self, pbo: int) -> None:
        self.GL.glDeleteBuffers(1, [pbo])


class _CudaGL:
    """CUDA tensor -> GL pixel-buffer object, device to device (CUDA-OpenGL interop through `cuda-bindings`).

    The runtime API binds the device's primary context, the one PyTorch uses, so a tensor's data pointer
    is valid here. The renderer hands over only finished tensors (it synchronises before publishing), and
    the copy runs on the legacy default stream; unmapping the buffer orders it before the GL upload.
    """

    def __init__(self, gl: _GL, device_index: int) -> None:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            try:
                from cuda import cudart  # cuda-python before 12.6 named the module so
            except ImportError:
                raise GLFramesError("cuda-bindings is not installed (pip install cuda-bindings)") from None
        self.cudart, self.gl = cudart, gl
        self._check(cudart.cudaSetDevice(device_index), "cudaSetDevice")
        _, count, devices = self._check(cudart.cudaGLGetDevices(4, cudart.cudaGLDeviceList.cudaGLDeviceListAll),
                                        "cudaGLGetDevices")
        if device_index not in list(devices)[:count]:
            raise GLFramesError(f"the OpenGL context does not run on CUDA device {device_index}")
        self.pbo = 0
        self.nbytes = 0
        self.resource = None

    def _check(self, result: Any, what: str) -> tuple:
        result = result if isinstance(result, tuple) else (result,)
        err = result[0]
        if int(err) != 0:
            raise GLFramesError(f"{what} failed: {err}")
        return result

    def _ensure(self, nbytes: int) -> None:
        if nbytes == self.nbytes:
            return
        self.close()
        self.pbo = self.gl.new_buffer(nbytes)
        flags = int(self.cudart.cudaGraphicsRegisterFlags.cudaGraphicsRegisterFlagsWriteDiscard)
        self.resource = self._check(self.cudart.cudaGraphicsGLRegisterBuffer(self.pbo, flags),
                                    "cudaGraphicsGLRegisterBuffer")[1]
        self.nbytes = nbytes

    def upload(self, tensor: torch.Tensor, name: int, shape: tuple[int, int]) -> None:
        cudart = self.cudart
        if not tensor.is_contiguous() or tensor.shape != (*shape, 4):
            raise GLFramesError(f"a CUDA frame must be contiguous uint8 [H, W, 4], got {tuple(tensor.shape)}")
        nbytes = tensor.numel()
        self._ensure(nbytes)
        self._check(cudart.cudaGraphicsMapResources(1, self.resource, 0), "cudaGraphicsMapResources")
        try:
            _, ptr, size = self._check(cudart.cudaGraphicsResourceGetMappedPointer(self.resource),
                                       "cudaGraphicsResourceGetMappedPointer")
            if size < nbytes:
                raise GLFramesError(f"the mapped buffer holds {size} bytes, the frame {nbytes}")
            self._check(cudart.cudaMemcpyAsync(ptr, tensor.data_ptr(), nbytes,
                                               cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice, 0), "cudaMemcpyAsync")
        finally:
            self._check(cudart.cudaGraphicsUnmapResources(1, self.resource, 0), "cudaGraphicsUnmapResources")
        GL = self.gl.GL
        GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, self.pbo)
        self.gl.tex_sub_image(name, shape, None)
        GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, 0)

    def close(self) -> None:
        if self.resource is not None:
            self.cudart.cudaGraphicsUnregisterResource(self.resource)
            self.resource = None
        if self.pbo:
            self.gl.delete_buffer(self.pbo)
            self.pbo = 0
        self.nbytes = 0


class FrameView:
    """The texture the explorer's image widget draws, and how frames get into it.

    `build()` (inside a texture registry's parent context) makes the placeholder texture for
    `dpg.add_image`; `enable_gl()` is called once Dear PyGui has drawn a frame (its GL context exists and
    is current on this thread), else the view stays on raw textures; `show(frame)` on the UI thread puts a
    frame into the texture the image draws, and returns False while a texture of a new size is still being
    found (call it again next UI frame with the newest frame).
    """

    def __init__(self, registry: int | str, image_tag: str, mode: str = "auto",
                 log: Callable[[str], None] = _log_stderr) -> None:
        if mode not in FRAME_PATHS:
            raise ValueError(f"unknown frame path {mode!r}; use one of {', '.join(FRAME_PATHS)}")
        self.registry, self.image_tag, self.mode, self.log = registry, image_tag, mode, log
        self.path = "raw"  # until enable_gl() succeeds
        self.gl_info: dict[str, str] = {}
        self.fallback_reason = ""
        self.upload_ms: deque[float] = deque(maxlen=60)  # UI-thread time to put one new frame on the GPU
        self.uploads = 0
        self.texture: int | str | None = None  # the Dear PyGui texture the image widget shows
        self.shape: tuple[int, int] | None = None  # (H, W) of the frame in it
        self._gl: _GL | None = None
        self._shown: _Texture | None = None  # GL path: the texture on screen
        self._next: _Texture | None = None  # GL path: a texture of a new size being found
        self._pbo = 0
        self._pbo_bytes = 0
        self._cuda: _CudaGL | None | bool = None  # None: not tried yet; False: unavailable
        self._raw_array: np.ndarray | None = None  # keeps the raw texture's memory alive
        self._texture_is_raw = True
        self._rng = np.random.default_rng()

    # ------------------------------------------------------------------ set-up

    def build(self) -> int | str:
        """The 1x1 raw placeholder the image shows until the first frame; returns its tag."""
        self.texture = dpg.add_raw_texture(1, 1, [0.0, 0.0, 0.0], format=dpg.mvFormat_Float_rgb,
                                           parent=self.registry)
        self.shape = (1, 1)
        return self.texture

    def enable_gl(self) -> bool:
        """Switch to the OpenGL path if this context allows it (call after Dear PyGui drew a frame)."""
        if self.mode == "raw":
            return False
        try:
            _fault("enable")
            gl = _GL()
            self.gl_info = gl.info()
        except Exception as e:  # ImportError, no context, a PyOpenGL/driver error: all mean "use raw"
            self._fall_back(e)
            return False
        self._gl = gl
        self.path = "gl-pbo" if self.mode == "gl-pbo" else "gl"
        return True

    # ------------------------------------------------------------------ frames

    def show(self, frame: Frame) -> bool:
        """Put `frame` into the texture the image draws (UI thread); False = not yet, call again next frame."""
        if self._gl is None:
            self._show_raw(frame)
            return True
        shape = frame_shape(frame)
        gl = self._gl
        state = None
        try:
            state = gl.saved_state()
            if self._shown is None or self._shown.shape != shape:
                target = self._prepare(shape)
                if target is None:
                    return False
            else:
                target = self._shown
            self.upload_ms.append(self._upload(target, frame))
            self.uploads += 1
            if target is not self._shown:
                self._swap_to(target)
            return True
        except Exception as e:
            self._fall_back(e)
            self._show_raw(frame)
            return True
        finally:
            if state is not None and self._gl is not None:
                try:
                    gl.restore(state)
                except Exception:  # noqa: BLE001 - a context that broke here fails the next show() anyway
                    pass

    def _prepare(self, shape: tuple[int, int]) -> _Texture | None:
        """A texture of `shape` with a known GL name, or None while Dear PyGui has yet to create it."""
        nxt = self._next
        if nxt is not None and nxt.shape != shape:
            dpg.delete_item(nxt.tag)
            nxt = self._next = None
        if nxt is None:
            h, w = shape
            marker = self._rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
            tag = dpg.add_static_texture(w, h, (marker.astype(np.float32) / 255.0).reshape(-1),
                                         parent=self.registry)
            self._next = _Texture(tag=tag, shape=shape, marker=marker)
            return None  # Dear PyGui creates the GL texture when it next draws the registry
        _fault("find")
        nxt.tries += 1
        nxt.name = self._gl.find_texture(shape, nxt.marker)
        if not nxt.name:
            if nxt.tries >= FIND_TRIES:
                raise GLFramesError(f"Dear PyGui's {shape[1]}x{shape[0]} static texture was not found among the GL "
                                    f"texture names after {nxt.tries} frames")
            return None
        nxt.marker = None
        return nxt

    def _upload(self, target: _Texture, frame: Frame) -> float:
        """Write the frame into `target`; returns the upload's own UI-thread time in ms (no set-up, no calibration)."""
        _fault("upload")
        gl = self._gl
        if frame.device_rgba is not None and self._cuda_ready(frame):
            t0 = time.perf_counter()
            try:
                self._cuda.upload(frame.device_rgba, target.name, target.shape)
                self.path = "cuda-gl"
                return (time.perf_counter() - t0) * 1000
            except Exception as e:  # interop broke: keep OpenGL, take the host copy from now on
                self._cuda_off(e)
        pixels = np.ascontiguousarray(host_rgba(frame))
        if pixels.dtype != np.uint8 or pixels.shape != (*target.shape, 4):
            raise GLFramesError(f"a frame must be uint8 [H, W, 4], got {pixels.dtype} {pixels.shape}")
        if target.use_pbo is None:
            target.use_pbo = self._pbo_is_faster(target, pixels)
        t0 = time.perf_counter()
        if target.use_pbo:
            gl.pbo_upload(self._ensure_pbo(pixels.nbytes), target.name, target.shape, pixels)
            self.path = "gl-pbo"
        else:
            gl.tex_sub_image(target.name, target.shape, pixels)
            self.path = "gl"
        return (time.perf_counter() - t0) * 1000

    def _pbo_is_faster(self, target: _Texture, pixels: np.ndarray) -> bool:
        """Per texture size: time both host uploads (the texture is about to be overwritten anyway)."""
        if self.mode in ("gl", "gl-pbo"):
            return self.mode == "gl-pbo"
        gl, times = self._gl, {False: [], True: []}
        pbo = self._ensure_pbo(pixels.nbytes)
        for _ in range(CALIBRATION_UPLOADS):
            for use_pbo in (False, True):
                t0 = time.perf_counter()
                if use_pbo:
                    gl.pbo_upload(pbo, target.name, target.shape, pixels)
                else:
                    gl.tex_sub_image(target.name, target.shape, pixels)
                gl.GL.glFinish()  # both paths' whole cost, including what the driver defers
                times[use_pbo].append(time.perf_counter() - t0)
        return min(times[True]) < min(times[False])

    def _ensure_pbo(self, nbytes: int) -> int:
        if self._pbo and self._pbo_bytes != nbytes:
            self._gl.delete_buffer(self._pbo)
            self._pbo = 0
        if not self._pbo:
            self._pbo, self._pbo_bytes = self._gl.new_buffer(nbytes), nbytes
        return self._pbo

    def _cuda_ready(self, frame: Frame) -> bool:
        """CUDA-GL interop, set up on the first CUDA frame; one log line and the host path if it cannot be."""
        if self._cuda is None:
            if self.mode != "auto":
                self._cuda = False
                return False
            try:
                self._cuda = _CudaGL(self._gl, frame.device_rgba.device.index or 0)
            except Exception as e:
                self._cuda_off(e)
        return bool(self._cuda)

    def _cuda_off(self, error: BaseException) -> None:
        """No CUDA-GL interop for this session: one log line, the frames' host copies from now on."""
        if isinstance(self._cuda, _CudaGL):
            try:
                self._cuda.close()
            except Exception:  # noqa: BLE001 - releasing after an interop failure is best effort
                pass
        self._cuda = False
        self.log(f"explorer: CUDA-OpenGL interop unavailable ({type(error).__name__}: {error}); frames go through "
                 f"host memory")

    def _swap_to(self, target: _Texture) -> None:
        dpg.configure_item(self.image_tag, texture_tag=target.tag)
        old, self.texture = self.texture, target.tag
        self._shown, self._next = target, None
        self.shape, self._texture_is_raw = target.shape, False
        if old is not None and old != target.tag:
            dpg.delete_item(old)  # Dear PyGui frees its GL texture

    def _show_raw(self, frame: Frame) -> None:
        """Today's path: a float32 RGB raw texture (a new array each time: the texture keeps a pointer)."""
        flat = raw_rgb(frame)
        h, w = frame_shape(frame)
        if self.shape != (h, w) or not self._texture_is_raw:
            old = self.texture
            self.texture = dpg.add_raw_texture(w, h, flat, format=dpg.mvFormat_Float_rgb, parent=self.registry)
            self.shape, self._shown, self._texture_is_raw = (h, w), None, True
            dpg.configure_item(self.image_tag, texture_tag=self.texture)
            if old is not None:
                dpg.delete_item(old)  # raw textures re-upload every frame: keep only the one shown
        else:
            dpg.set_value(self.texture, flat)
        self._raw_array = flat

    def _fall_back(self, error: BaseException) -> None:
        """Give up on OpenGL for this session: one log line, raw textures from now on."""
        self.fallback_reason = f"{type(error).__name__}: {error}"
        self.log(f"explorer: OpenGL frame upload unavailable ({self.fallback_reason}); using Dear PyGui raw "
                 f"textures")
        self._release_gl()
        self.path = "raw"

    def _release_gl(self) -> None:
        if self._next is not None:
            dpg.delete_item(self._next.tag)
            self._next = None
        gl, self._gl = self._gl, None
        try:
            if isinstance(self._cuda, _CudaGL):
                self._cuda.close()
            if gl is not None and self._pbo:
                gl.delete_buffer(self._pbo)
        except Exception:  # noqa: BLE001 - releasing after a GL failure is best effort
            pass
        self._cuda, self._pbo, self._pbo_bytes = False, 0, 0

    def close(self) -> None:
        """Free the GL objects this view made (before the Dear PyGui context goes)."""
        self._release_gl()

    # ------------------------------------------------------------------ inspection

    def read_back(self) -> np.ndarray | None:
        """uint8 [H, W, 4] that the GL texture on screen holds (None on the raw path)."""
        if self._gl is None or self._shown is None:
            return None
        return self._gl.read_texture(self._shown.name, self._shown.shape)

    def summary(self) -> dict:
        ms = sorted(self.upload_ms)
        return {"frame_path": self.path, "gl": dict(self.gl_info), "uploads": self.uploads,
                "upload_ms_median": ms[len(ms) // 2] if ms else 0.0,
                "upload_ms_last": self.upload_ms[-1] if self.upload_ms else 0.0,
                "fallback_reason": self.fallback_reason}
