"""The explorer's renderer without any GUI: exact agreement with `core`, cache, newest-wins, generations."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import SGXLError, UserInputError
from core.io.checkpoint import save_checkpoint
from core.networks import precision
from core.sampling import to_uint8, ws_from_seeds
from explorer.renderer import (
    Renderer,
    RenderSettings,
    blend_weights,
    grid_seed_weights,
    input_transform,
)
from tests.helpers import make_tiny_generator, wait_until


@pytest.fixture(scope="module")
def G():
    return make_tiny_generator(16, c_dim=5)


@pytest.fixture
def one_thread():
    """Tiny renders: one torch thread is as fast and immune to OpenMP stalls on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def renderer(G, one_thread):
    r = Renderer("cpu")
    r.set_model(G, key="tiny16")
    yield r
    r.close()


def core_image(G, seed: int, cls: int | None, psi: float) -> np.ndarray:
    with torch.no_grad():
        return to_uint8(G.synthesis(ws_from_seeds(G, [seed], cls, psi)))[0]


def wait_frame(r: Renderer, timeout: float = 60.0):
    frames = []
    wait_until(lambda: frames.append(r.take_frame()) or frames[-1] is not None,
               f"a frame (events {r.poll_events()})", timeout)
    return frames[-1]


def wait_idle(r: Renderer) -> None:
    """Until the worker has nothing pending and is not working: every frame it finished is posted or discarded."""
    wait_until(lambda: not r.busy(), "the render worker to go idle")


def hold_renders(renderer: Renderer, monkeypatch, seeds: list[int] | None = None
                 ) -> tuple[threading.Event, threading.Event]:
    """Make every render of the worker set `started`, then wait for `release` (requests arrive meanwhile);
    the seed of each render goes to `seeds`. Returns (started, release)."""
    started, release = threading.Event(), threading.Event()
    real = renderer._render_tensor

    def blocking(G, s, *args):
        if seeds is not None:
            seeds.append(s.seeds[0][0])
        started.set()
        release.wait(60)
        return real(G, s, *args)

    monkeypatch.setattr(renderer, "_render_tensor", blocking)
    return started, release


@pytest.mark.parametrize("seed,cls,psi", [(0, 0, 1.0), (3, 2, 0.7), (123456, 4, -0.5), (2**32 - 1, 1, 1.5)])
def test_render_sync_is_exactly_core(renderer: Renderer, G, seed: int, cls: int, psi: float) -> None:
    got = renderer.render_sync(RenderSettings.single(seed, cls, psi))
    assert got.dtype == np.uint8 and got.shape == (16, 16, 3)
    assert np.array_equal(got, core_image(G, seed, cls, psi))


def test_worker_frame_is_the_core_image_as_uint8_rgba(renderer: Renderer, G) -> None:
    s = RenderSettings.single(5, 1, 0.8)
    renderer.request(s)
    f = wait_frame(renderer)
    assert f.settings == s and not f.cached and not f.preview
    # The hand-over: uint8 RGBA, opaque, the core image; on the CPU nothing stays on a GPU.
    assert f.rgba.dtype == np.uint8 and f.rgba.shape == (16, 16, 4) and f.rgba.flags["C_CONTIGUOUS"]
    assert (f.rgba[..., 3] == 255).all() and f.device_rgba is None
    assert np.array_equal(f.to_uint8(), core_image(G, 5, 1, 0.8))
    # Raw textures (the fallback) take float32 RGB = uint8 / 255, which round-trips exactly.
    assert f.rgb.dtype == np.float32 and f.rgb.shape == (16, 16, 3) and f.rgb.flags["C_CONTIGUOUS"]
    assert np.array_equal(np.rint(f.rgb * 255).astype(np.uint8), f.to_uint8())


def test_rendering_main_view_is_true_only_while_a_main_view_frame_renders(renderer: Renderer, monkeypatch) -> None:
    """The UI lowers its frame rate on `rendering_main_view()` (explorer/app.py RENDERING_FPS): it must say True
    while the worker renders a requested frame and False before and after it (during a refinement:
    test_a_newer_request_interrupts_the_refinement)."""
    started, release = hold_renders(renderer, monkeypatch)
    assert not renderer.rendering_main_view()
    renderer.request(RenderSettings.single(21, 0))
    assert started.wait(60)
    assert renderer.rendering_main_view()
    release.set()
    f = wait_frame(renderer)
    wait_idle(renderer)
    assert not renderer.rendering_main_view()
    # The worker thread's own CPU time for the frame: positive, and (one torch thread: all of the work ran on
    # that thread) not above its wall time; the wait inside `blocking` took no CPU.
    assert 0 < f.render_cpu_ms <= f.render_ms + 1


def test_cache_makes_scrubbing_back_instant(renderer: Renderer) -> None:
    a, b = RenderSettings.single(1, 0, 1.0), RenderSettings.single(2, 0, 1.0)
    renderer.request(a)
    fa = wait_frame(renderer)
    renderer.request(b)
    wait_frame(renderer)
    renders = renderer.stats["renders"]
    renderer.request(a)  # back to a: served from the cache without the worker, so the frame is there at once
    fa2 = renderer.take_frame()
    assert fa2 is not None and fa2.cached  # (how fast that is: bench/render_latency.py, not a timed test)
    assert renderer.stats["renders"] == renders and np.array_equal(fa2.rgba, fa.rgba)
    assert renderer.cache_info()["entries"] == 2


def test_cache_key_is_the_full_settings(renderer: Renderer) -> None:
    base = RenderSettings.single(1, 0, 1.0)
    variants = [base, RenderSettings.single(1, 0, 0.9), RenderSettings.single(1, 1, 1.0),
                RenderSettings(seeds=((1, 1.0),), classes=((0, 1.0),), mix_seed=2, mix_layers=(1, 2)),
                RenderSettings(seeds=((1, 1.0),), classes=((0, 1.0),), translate=(0.1, 0.0)),
                RenderSettings(seeds=((1, 1.0),), classes=((0, 1.0),), layer="input")]
    images = [renderer.render_frame(v).to_uint8() for v in variants]
    assert renderer.stats["renders"] == len(variants)  # no false cache hit between them
    for i in range(1, len(images)):
        assert not np.array_equal(images[0], images[i]) or images[0].shape != images[i].shape


def test_latest_request_wins(renderer: Renderer, monkeypatch) -> None:
    rendered: list[int] = []
    started, release = hold_renders(renderer, monkeypatch, rendered)  # seed 10 renders until the newer requests are in
    renderer.request(RenderSettings.single(10, 0))
    assert started.wait(60)
    for seed in range(11, 16):  # arrive while seed 10 renders: only the newest survives
        renderer.request(RenderSettings.single(seed, 0))
    release.set()
    frames = []
    wait_until(lambda: frames.append(renderer.take_frame()) or frames[-1] is not None
               and frames[-1].settings.seeds[0][0] == 15, "the frame of seed 15")
    assert rendered == [10, 15] and renderer.stats["dropped"] == 4
    assert frames[-1].settings == RenderSettings.single(15, 0)


def test_older_frame_never_replaces_a_newer_one(renderer: Renderer, monkeypatch) -> None:
    cached = RenderSettings.single(20, 0)
    renderer.render_frame(cached)  # now in the cache
    started, release = hold_renders(renderer, monkeypatch)
    renders = renderer.stats["renders"]
    renderer.request(RenderSettings.single(21, 0))  # slow, in flight
    assert started.wait(60)
    renderer.request(cached)  # newer request, answered from the cache at once
    assert renderer.take_frame().settings == cached
    release.set()
    wait_idle(renderer)
    assert renderer.stats["renders"] == renders + 1  # seed 21 did finish...
    assert renderer.take_frame() is None  # ...later, but is older than what is shown


def test_model_change_discards_frames_of_the_old_model(renderer: Renderer, monkeypatch) -> None:
    started, release = hold_renders(renderer, monkeypatch)
    gen = renderer.generation
    renderer.request(RenderSettings.single(30, 0))
    assert started.wait(60)
    renderer.set_model(make_tiny_generator(16, c_dim=5, seed=1), key="other")  # while the frame renders
    assert renderer.generation == gen + 1
    release.set()
    wait_idle(renderer)  # the old model's frame is finished and was discarded, not posted
    assert renderer.take_frame() is None and renderer.stats["stale"] == 1
    monkeypatch.undo()  # the real renders again
    renderer.request(RenderSettings.single(30, 0))
    f = wait_frame(renderer)
    assert f.generation == gen + 1


def test_settings_of_another_checkpoint_are_refused(renderer: Renderer) -> None:
    with pytest.raises(SGXLError, match="another checkpoint"):
        renderer.render_sync(RenderSettings.single(0, 0, ckpt="some-other-model"))
    renderer.render_sync(RenderSettings.single(0, 0, ckpt="tiny16"))


def test_render_errors_are_events_and_the_worker_survives(renderer: Renderer, G) -> None:
    renderer.request(RenderSettings.single(0, 7))  # class 7 of 5
    events = []
    wait_until(lambda: events.extend(renderer.poll_events()) or events, "the error event")
    assert events[0][0] == "error" and "class 7 is out of range" in events[0][1]
    renderer.request(RenderSettings.single(0, 1))
    assert np.array_equal(wait_frame(renderer).to_uint8(), core_image(G, 0, 1, 1.0))


@pytest.mark.parametrize("bad,match", [
    (RenderSettings(seeds=((-1, 1.0),)), "seed -1 is out of range"),
    (RenderSettings(seeds=((0, 1.0),), classes=()), "class-conditional"),
    (RenderSettings(mix_seed=1, mix_layers=(99,)), "style-mix layer 99"),
    (RenderSettings(layer="L99"), "no layer 'L99'"),
    (RenderSettings(layer="input", layer_view="3d"), "unknown layer view"),
])
def test_invalid_settings_raise_user_errors(renderer: Renderer, bad: RenderSettings, match: str) -> None:
    with pytest.raises(UserInputError, match=match):
        renderer.render_sync(bad)


def test_no_model_and_bad_checkpoint(tmp_path: Path, one_thread) -> None:
    r = Renderer("cpu", threaded=False)
    with pytest.raises(SGXLError, match="no model is loaded"):
        r.render_sync(RenderSettings())
    bad = tmp_path / "bad.sgxl"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(SGXLError, match="not a .sgxl checkpoint"):
        r.load(bad)
    r.load_async(bad)  # synchronous renderer: the error is an event at once
    assert r.poll_events()[0][0] == "error" and r.info is None


def test_load_checkpoint_file_and_model_info(tmp_path: Path, G, one_thread) -> None:
    path = save_checkpoint(tmp_path / "m.sgxl", G, {"kimg": 7}, class_names=list("abcde"))
    r = Renderer("cpu", threaded=False)
    info = r.load(path)
    assert (info.resolution, info.c_dim, info.kimg, info.num_ws) == (16, 5, 7.0, G.num_ws)
    assert info.class_names == tuple("abcde") and info.layer_names[0] == "input"
    assert info.num_params == sum(p.numel() for p in G.parameters())
    got = r.render_sync(RenderSettings.single(4, 3, 0.5, ckpt=info.key))
    assert np.array_equal(got, core_image(G, 4, 3, 0.5))


def test_unconditional_model(one_thread) -> None:
    G0 = make_tiny_generator(16, c_dim=0)
    r = Renderer("cpu", threaded=False)
    r.set_model(G0, key="uncond")
    got = r.render_sync(RenderSettings(seeds=((2, 1.0),), classes=(), psi=0.5))
    assert np.array_equal(got, core_image(G0, 2, None, 0.5))


def test_thumbnails_are_the_seed_in_each_class(renderer: Renderer, G) -> None:
    s = RenderSettings.single(8, 0, 0.7)
    th = renderer.render_thumbnails(s, (0, 2, 4))
    assert th.images.shape == (3, 16, 16, 3) and th.classes == (0, 2, 4)
    for img, c in zip(th.images, (0, 2, 4)):
        assert np.abs(img.astype(int) - core_image(G, 8, c, 0.7).astype(int)).max() <= 1
    assert renderer.render_thumbnails(s, (0, 1), should_stop=lambda: True) is None


def test_grid_seed_weights() -> None:
    assert grid_seed_weights(5, (0.0, 0.0)) == ((5, 1.0),)
    assert grid_seed_weights(5, (2.0, 1.0), stride=1000) == ((1007, 1.0),)
    w = dict(grid_seed_weights(5, (0.25, 0.5), stride=1000))
    assert w == {5: 0.375, 6: 0.125, 1005: 0.375, 1006: 0.125}
    assert sum(dict(grid_seed_weights(0, (-0.3, -1.7))).values()) == pytest.approx(1.0)
    assert all(0 <= s < 2**32 for s, _ in grid_seed_weights(0, (-0.3, -1.7)))  # wraps, never negative


def test_blend_weights_is_canonical() -> None:
    assert blend_weights(((1, 1.0),), ((3, 1.0),), 0.25) == ((1, 0.75), (3, 0.25))
    assert blend_weights(((3, 1.0),), ((1, 1.0),), 0.75) == ((1, 0.75), (3, 0.25))
    assert blend_weights(((1, 1.0),), ((3, 1.0),), 0.0) == ((1, 1.0),)


def test_input_transform_matrix() -> None:
    assert input_transform((0.0, 0.0), 0.0) is None
    m = input_transform((0.5, -0.25), 90.0)
    fwd = torch.linalg.inv(m)
    assert torch.allclose(fwd[:2, 2], torch.tensor([0.5, -0.25]))
    assert torch.allclose(fwd[:2, :2], torch.tensor([[0.0, 1.0], [-1.0, 0.0]]), atol=1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_frame_path_matches_cpu(G) -> None:
    r = Renderer("cuda", threaded=False)
    r.set_model(make_tiny_generator(16, c_dim=5), key="gpu")
    f = r.render_frame(RenderSettings.single(3, 1, 0.7))
    assert f.rgba.dtype == np.uint8 and f.rgba.shape == (16, 16, 4) and f.rgba.flags["C_CONTIGUOUS"]
    cpu = core_image(G, 3, 1, 0.7)
    assert np.abs(f.to_uint8().astype(int) - cpu.astype(int)).mean() < 1.0  # GPU vs CPU float math
    # CUDA-GL interop gets the same RGBA frame, still on the GPU.
    assert f.device_rgba.is_cuda and f.device_rgba.dtype == torch.uint8 and f.device_rgba.is_contiguous()
    assert np.array_equal(f.device_rgba.cpu().numpy(), f.rgba)


def test_capture_names() -> None:
    from explorer.panels.capture import capture_name

    assert capture_name(RenderSettings.single(7, 2, 0.7)) == "seed7-class2-psi0.70"
    blend = RenderSettings(seeds=((3, 0.5), (4, 0.5)), classes=((0, 0.5), (1, 0.5)))
    assert capture_name(blend) == "seedblend3-4-classblend-psi1.00"
    inverted = RenderSettings(seeds=(), classes=((1, 1.0),), latent="my photo/1.jpg")
    assert capture_name(inverted) == "latent-my_photo_1.jpg-class1-psi1.00"


# ---------------------------------------------------------------------------- progressive refinement (previews)

@pytest.fixture
def progressive(G, one_thread):
    """A threaded renderer whose previews run every modulated conv in bf16 (a fixed plan: no measuring)."""
    r = Renderer("cpu", rest_s=0.05)
    r.set_model(G, key="tiny16")
    r.bf16_support = r.bf16_support or "emulated"  # the arithmetic is the same where the CPU lacks bf16
    r.set_preview_plan(precision.PrecisionPlan(conv=frozenset(x.spec.name for x in G.synthesis.layers())))
    r.set_bf16(True)
    published: list = []
    r.on_frame = lambda: published.append(r._frame)  # every frame handed to the UI, in order
    r.published = published
    yield r
    r.close()


def test_drag_shows_previews_then_the_exact_frame_of_the_last_settings(progressive: Renderer, G) -> None:
    r = progressive
    moves = [RenderSettings.single(7, 1, float(psi)) for psi in np.linspace(0.4, 1.0, 10)]
    for s in moves:  # a slider drag: each move supersedes the last
        r.request(s, interactive=True)
    assert r.wait_idle(60)  # the input rests: the exact frame of the last move follows
    last = moves[-1]
    f = r.take_frame()
    assert f is not None and f.settings == last and not f.preview
    assert np.array_equal(f.to_uint8(), r.render_sync(last))
    assert np.array_equal(f.to_uint8(), core_image(G, 7, 1, 1.0))
    shown = r.published
    assert any(p.preview for p in shown) and r.stats["previews"] >= 1
    assert shown[-1] is f or (shown[-1].settings == last and not shown[-1].preview)
    first_of_last = next(i for i, p in enumerate(shown) if p.settings == last)
    assert all(p.settings == last for p in shown[first_of_last:])  # never an older frame after a newer one
    preview = next(p for p in shown if p.preview)
    exact = r.render_sync(preview.settings)
    assert not np.array_equal(preview.to_uint8(), exact)  # really a bf16 preview ...
    mse = ((preview.to_uint8().astype(float) - exact.astype(float)) ** 2).mean()
    assert 10 * np.log10(255**2 / mse) > 30  # ... of the same picture


def test_the_truncation_cutoff_reaches_previews_and_the_refined_frame(progressive: Renderer, G) -> None:
    """The explorer's cutoff slider during a drag: previews and the exact frame at rest both truncate only the
    first N ws (the settings carry the cutoff through the preview and refinement jobs)."""
    from dataclasses import replace

    r = progressive
    moves = [replace(RenderSettings.single(7, 1, -0.5), trunc_cutoff=c) for c in (1, 2, 3)]
    for s in moves:
        r.request(s, interactive=True)
    assert r.wait_idle(60)
    f = r.take_frame()
    assert f.settings == moves[-1] and not f.preview
    with torch.no_grad():
        expected = to_uint8(G.synthesis(ws_from_seeds(G, [7], 1, -0.5, cutoff=3)))[0]
    assert np.array_equal(f.to_uint8(), expected)
    everywhere = core_image(G, 7, 1, -0.5)  # psi on all ws: another image
    assert np.abs(expected.astype(int) - everywhere.astype(int)).mean() > 1
    previews = [p for p in r.published if p.preview]
    assert previews and all(p.settings in moves for p in previews)
    for p in previews:  # each preview approximates the image *with* its cutoff, not psi on every ws
        own = r.render_sync(p.settings).astype(float)
        all_ws = r.render_sync(replace(p.settings, trunc_cutoff=None)).astype(float)
        shown = p.to_uint8().astype(float)
        assert ((shown - own) ** 2).mean() < ((shown - all_ws) ** 2).mean()


def test_a_newer_request_interrupts_the_refinement(progressive: Renderer, G) -> None:
    r = progressive
    a, b = RenderSettings.single(11, 0, 0.9), RenderSettings.single(12, 0, 0.9)
    entered, release = threading.Event(), threading.Event()

    def hold(module, args) -> None:  # runs after the renderer's own between-layers check of this layer
        if r._working == "refine" and not entered.is_set():
            entered.set()
            release.wait(30)

    handle = G.synthesis.layers()[2].register_forward_pre_hook(hold)
    try:
        r.request(a, interactive=True)
        assert entered.wait(60)  # the exact frame of `a` is being rendered ...
        assert r.rendering_main_view()  # (the UI draws at RENDERING_FPS meanwhile)
        r.request(b, interactive=True)  # ... when the user moves on
        release.set()
        assert r.wait_idle(60)
    finally:
        handle.remove()
    assert r.stats["interrupted"] == 1
    f = r.take_frame()
    assert f.settings == b and not f.preview and np.array_equal(f.to_uint8(), r.render_sync(b))
    assert not any(p.settings == a and not p.preview for p in r.published)  # a's exact frame was abandoned


def test_plain_requests_are_exact_at_once(progressive: Renderer, G) -> None:
    s = RenderSettings.single(13, 2, 0.7)
    progressive.request(s)  # not interactive (a click, a typed value): no preview
    assert progressive.wait_idle(60)
    f = progressive.take_frame()
    assert not f.preview and progressive.stats["previews"] == 0
    assert np.array_equal(f.to_uint8(), core_image(G, 13, 2, 0.7))


def test_scrubbing_back_over_previews_shows_the_cached_preview_then_the_exact_frame(progressive: Renderer) -> None:
    r = progressive
    r.rest_s = 60.0  # the input never rests during this drag
    a, b = RenderSettings.single(14, 0), RenderSettings.single(15, 0)
    r.request(a, interactive=True)
    fa = wait_frame(r)
    r.request(b, interactive=True)
    assert wait_frame(r).preview and fa.preview
    r.request(a, interactive=True)  # back over a: its preview from the cache, at once
    f = r.take_frame()
    assert f is not None and f.cached and f.preview and np.array_equal(f.rgba, fa.rgba)
    r.request(a)  # the mouse is released on a: the exact frame follows without waiting for rest
    assert r.wait_idle(60)
    f = r.take_frame()
    assert f.settings == a and not f.preview and np.array_equal(f.to_uint8(), r.render_sync(a))


def test_without_bf16_or_plain_activation_there_are_no_previews(G, one_thread, monkeypatch) -> None:
    monkeypatch.setenv("SGXL_BF16", "0")  # as on a CPU without AVX512-BF16 / AMX
    r = Renderer("cpu", bf16="auto", rest_s=0.05)
    try:
        r.set_model(G, key="tiny16")
        assert r.preview_status()["state"] == "off" and r.preview_plan is None  # no bf16, no plain activation
        r.request(RenderSettings.single(16, 0), interactive=True)
        assert r.wait_idle(60)
        f = r.take_frame()
        assert not f.preview and r.stats["previews"] == 0
    finally:
        r.close()


def wait_for_plan(r: Renderer, timeout: float = 120.0) -> dict:
    """The renderer's preview status once its background plan measurement has ended (or the time-out)."""
    deadline = time.time() + timeout
    with r._lock:  # the worker notifies this condition when the measurement ends
        while r.preview_status()["state"] in ("waiting", "measuring") and time.time() < deadline:
            r._lock.wait(1.0)
    return r.preview_status()


@pytest.mark.skipif(precision.cpu_bf16_support() is None, reason="this CPU has no native bf16")
def test_worker_measures_the_plan_when_idle_after_a_load(G, one_thread) -> None:
    r = Renderer("cpu", bf16="auto")
    try:
        r.set_model(G, key="tiny16")
        st = wait_for_plan(r)
        assert st["state"] in ("ready", "no gain") and st["plan"] is not None
        assert [t.name for t in st["plan"].timings] == list(G.synthesis.layer_names)
        r.set_bf16(False)
        assert r.preview_plan is None and r.preview_status()["state"] == "off"
    finally:
        r.close()


def test_worker_measures_a_plan_without_bf16_too(one_thread, monkeypatch) -> None:
    """On any CPU: the last stage's same-rate layers may skip their anti-aliasing filters in previews."""
    monkeypatch.setenv("SGXL_BF16", "0")  # as on a CPU without AVX512-BF16 / AMX
    G32 = make_tiny_generator(32, c_dim=5)  # stem + one growth stage
    r = Renderer("cpu", plain_preview=True, rest_s=0.05)
    try:
        r.set_model(G32, key="tiny32")
        st = wait_for_plan(r)
        assert st["state"] in ("ready", "no gain") and st["bf16_support"] is None
        plan = r._plan
        final = max(x.spec.stage for x in G32.synthesis.layers())
        eligible = {x.spec.name for x in G32.synthesis.layers() if precision.qualifies_for_plain(x, final)}
        assert not plan.conv and not plan.fir and plan.plain <= eligible
        s = RenderSettings.single(3, 1, 0.9)
        r.request(s, interactive=True)
        assert r.wait_idle(60)
        f = r.take_frame()
        assert not f.preview and np.array_equal(f.to_uint8(), r.render_sync(s))
        assert r.stats["previews"] == (1 if st["state"] == "ready" else 0)
    finally:
        r.close()
