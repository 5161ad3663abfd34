"""The ahead-of-time compiled synthesis (core.networks.aot) and the explorer's use of it (explorer/compiled.py).

One package is built per test session, by the renderer's own background build (a real `python -m
core.networks.aot` process, 10-30 s of CPU); the other tests load it from that cache. Skipped where no C++
compiler is installed (building needs one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import SGXLError
from core.io.checkpoint import save_checkpoint
from core.networks import aot
from core.sampling import input_transform
from explorer.renderer import Renderer, RenderSettings, ws_for
from tests.helpers import make_tiny_generator, wait_until

needs_compiler = pytest.mark.skipif(aot.compiler() is None, reason="no C++ compiler to build a compiled synthesis")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint, cache folder holding its package), built through the renderer's background build."""
    if aot.compiler() is None:
        pytest.skip("no C++ compiler to build a compiled synthesis")
    root = tmp_path_factory.mktemp("aot")
    ckpt = save_checkpoint(root / "tiny.sgxl", make_tiny_generator(16))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        r = Renderer("cpu", threaded=False, compiled="auto")
        try:
            r.load(ckpt)
            assert r.compiled.state == "building"
            wait_until(lambda: r.compiled.state != "building", "the background build", timeout=600, poll_s=0.2)
            assert r.compiled.state == "ready", r.compiled.state
            package = aot.package_path(ckpt)
        finally:
            r.close()
    assert package.exists() and package.parent == root / "cache" / "sgxl" / "aot"
    assert not list(package.parent.glob("tmp*")), "the package is written atomically"
    return ckpt, root / "cache"


@needs_compiler
def test_compiled_synthesis_equals_the_eager_network(built: tuple[Path, Path], monkeypatch) -> None:
    ckpt, cache = built
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    G = make_tiny_generator(16)  # the same weights (seed 0) as the checkpoint
    run = aot.load(aot.package_path(ckpt), G.synthesis)
    torch.manual_seed(1)
    for transform in (None, input_transform((0.1, -0.05), 20.0)):
        ws = ws_for(G, ((5, 1.0),), ((2, 1.0),), 0.7, "cpu")
        with torch.no_grad():
            want = G.synthesis(ws, transform=transform)
        got = run(ws, transform)
        assert got.shape == want.shape == (1, 3, 16, 16)
        assert (got - want).abs().max().item() < 1e-4
    with pytest.raises(ValueError, match="shape"):
        run(torch.zeros(2, G.num_ws, G.w_dim), None)
    # The package computes with the weights of the network it is loaded for (no copy of its own) ...
    G1 = make_tiny_generator(16, seed=1)
    ws = ws_for(G1, ((5, 1.0),), ((2, 1.0),), 0.7, "cpu")
    with torch.no_grad():
        assert (aot.load(aot.package_path(ckpt), G1.synthesis)(ws, None) - G1.synthesis(ws)).abs().max() < 1e-4
    # ... and refuses a network of another structure.
    with pytest.raises(SGXLError, match="does not fit"):
        aot.load(aot.package_path(ckpt), make_tiny_generator(32).synthesis)


@needs_compiler
def test_renderer_shows_compiled_exact_frames_and_keeps_render_sync_eager(built: tuple[Path, Path],
                                                                           monkeypatch) -> None:
    ckpt, cache = built
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    r = Renderer("cpu", threaded=False, compiled="auto")
    try:
        r.load(ckpt)
        assert r.compiled.state == "ready"  # built before: loaded at once, no second build
        s = RenderSettings.single(3, 1, 0.6)
        frame = r.render_frame(s)
        assert frame.compiled and not frame.preview and r.stats["compiled"] == 1
        eager = r.render_sync(s)
        assert np.abs(frame.to_uint8().astype(int) - eager.astype(int)).max() <= 1
        layer = r.render_frame(RenderSettings(seeds=((3, 1.0),), classes=((1, 1.0),), layer=r.info.layer_names[1]))
        assert not layer.compiled  # layer views run the eager network
    finally:
        r.close()


@needs_compiler
def test_a_damaged_package_is_dropped_and_frames_stay_eager(built: tuple[Path, Path], tmp_path: Path,
                                                            monkeypatch) -> None:
    ckpt, cache = built
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    package = aot.package_path(ckpt)
    package.parent.mkdir(parents=True)
    package.write_bytes(b"not a package")
    r = Renderer("cpu", threaded=False, compiled="auto")
    try:
        r.load(ckpt)
        assert r.compiled.state.startswith("failed: cannot load") and not package.exists()
        assert not r.render_frame(RenderSettings.single(1, 0, 1.0)).compiled
    finally:
        r.close()


def test_off_unsupported_and_no_compiler(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ckpt = save_checkpoint(tmp_path / "m.sgxl", make_tiny_generator(16))
    r = Renderer("cpu", threaded=False)  # the default: off
    r.load(ckpt)
    assert r.compiled.state == "off" and not r.render_frame(RenderSettings.single(1, 0, 1.0)).compiled
    r = Renderer("cpu", threaded=False, compiled="auto")
    r.set_model(make_tiny_generator(16), key="no file")  # nothing to key a package on
    assert r.compiled.state == "unsupported"
    monkeypatch.setenv("CXX", "no-such-compiler-sgxl")
    r.load(ckpt)
    assert r.compiled.state.startswith("unavailable: no C++ compiler")
    assert not (tmp_path / "cache").exists()  # nothing was started
    monkeypatch.delenv("CXX")
    (tmp_path / "blocked").write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "blocked"))
    info = r.load(ckpt)  # the checkpoint still opens, eager
    reason = "unavailable: cannot build in" if aot.compiler() is not None else "unavailable: no C++ compiler"
    assert info.resolution == 16 and r.compiled.state.startswith(reason)
    with pytest.raises(ValueError, match="compiled must be"):
        Renderer("cpu", threaded=False, compiled="yes")


def test_package_path_follows_the_checkpoint_file(tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "m.sgxl", make_tiny_generator(16))
    first = aot.package_path(ckpt, tmp_path)
    assert aot.package_path(ckpt, tmp_path) == first and first.suffix == ".pt2" and first.name.startswith("m-")
    save_checkpoint(ckpt, make_tiny_generator(16, seed=1))  # new weights in the same file: a new package
    assert aot.package_path(ckpt, tmp_path) != first


def test_build_refuses_what_it_cannot_compile(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(SGXLError, match="StyleGAN-XL / StyleGAN3"):
        aot.build(torch.nn.Linear(2, 2), tmp_path / "x.pt2")
    monkeypatch.setenv("CXX", "no-such-compiler-sgxl")
    with pytest.raises(SGXLError, match="C\\+\\+ compiler"):
        aot.build(make_tiny_generator(16), tmp_path / "x.pt2")
    assert not (tmp_path / "x.pt2").exists()


@needs_compiler
def test_a_capture_of_a_compiled_frame_is_the_reference_image(built: tuple[Path, Path], tmp_path: Path,
                                                              monkeypatch) -> None:
    """The explorer shows the compiled frame, but a capture writes what `sgxl generate` writes, byte for byte."""
    import dearpygui.dearpygui as dpg
    from PIL import Image

    from tests.gui.conftest import headless_explorer
    from tests.gui.test_panels_headless import show_frame

    ckpt, cache = built
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("SGXL_COMPILED", "auto")
    with headless_explorer(tmp_path, ckpt) as app:
        assert app.renderer.compiled.state == "ready"
        app.invoke("latent.seed_input", 3)
        show_frame(app)
        assert app.frame is not None and app.frame.compiled
        app.perf_panel.tick(1e9)
        assert "exact frames: compiled synthesis (AOTInductor; 1 so far)" in dpg.get_value("perf.text")
        dpg.set_value("capture.dir", str(tmp_path / "caps"))
        app.invoke("capture.save")
        (saved,) = (tmp_path / "caps").glob("*.png")
        reference = Renderer("cpu", threaded=False)
        reference.load(ckpt)
        assert np.array_equal(np.asarray(Image.open(saved)), reference.render_sync(app.frame.settings))
