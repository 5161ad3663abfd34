"""The explorer's Train panel: following a run directory, dataset checks, starting/stopping `sgxl train`.

Headless parts build the whole UI in a Dear PyGui context without a viewport and press buttons
through `Explorer.invoke` (the same callback path a click takes). Synthetic run directories hold
exactly the log lines, snapshots and sample grids the trainer writes (core/training/trainer.py),
so the panel's curves can be compared value by value. The Xvfb test starts a real tiny training
run by clicking Start, watches it advance, clicks Stop, and opens the final snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np
import pytest
from PIL import Image

from core.cli import build_parser
from core.io.checkpoint import load_checkpoint, save_checkpoint
from explorer.app import Explorer
from explorer.training_run import PID_FILE, RunFollower, TrainProcess, TrainRequest, format_seconds
from tests.gui.conftest import headless_explorer
from tests.helpers import make_tiny_generator

# ----------------------------------------------------------------------------- helpers

def write_dataset(root: Path, res: int = 16, classes: int = 2, per_class: int = 8) -> Path:
    """One sub-folder of PNGs per class (ImageDataset's folder layout); class k is bright in channel k."""
    rng = np.random.RandomState(0)
    for c in range(classes):
        d = root / f"class{c}"
        d.mkdir(parents=True)
        for i in range(per_class):
            img = rng.randint(0, 60, (res, res, 3)).astype(np.uint8)
            img[..., c % 3] += 150
            Image.fromarray(img).save(d / f"{i:03d}.png")
    return root


def log_line(record: dict) -> str:
    return json.dumps({"time": 1000.0, **record}) + "\n"


TICKS = [  # kimg, sec_per_kimg, G_loss, D_loss: what the trainer logs at each tick
    (0.004, 900.0, 0.5, 2.0), (0.008, 300.0, -1.0, 1.5), (0.012, 310.0, 0.25, 1.75), (0.016, 290.0, 0.75, 1.25)]


def tick_record(kimg, spk, g, d) -> dict:
    return {"kimg": kimg, "step": int(kimg * 250), "sec_per_kimg": spk, "G_loss": g, "D_loss": d, "D_real": d / 2}


@pytest.fixture(scope="module")
def snapshot_file(tmp_path_factory) -> Path:
    G = make_tiny_generator(16, c_dim=2, seed=3)
    path = tmp_path_factory.mktemp("snap") / "snap.sgxl"
    return save_checkpoint(path, G, {"kimg": 0.008, "class_names": ["a", "b"]})


def make_run(root: Path, snapshot_file: Path, end: str | None = "done", error: str | None = None) -> Path:
    """A run directory as the trainer leaves it: start, 4 ticks, snapshots at 0.008 and 0.016, a metric."""
    run = root / "run"
    (run / "snapshots").mkdir(parents=True)
    (run / "samples").mkdir()
    lines = [log_line({"event": "start", "start_kimg": 0.0, "config": {"kimg": 0.02, "batch": 4}, "resolution": 16,
                       "num_images": 16})]
    for t in TICKS:
        lines.append(log_line(tick_record(*t)))
        if t[0] in (0.008, 0.016):
            name = f"{int(round(t[0] * 1000)):09d}"
            snap = run / "snapshots" / f"snapshot-{name}.sgxl"
            shutil.copy(snapshot_file, snap)
            grid = np.full((32, 64, 3), int(t[0] * 10000), np.uint8)  # 80 then 160: which grid is shown
            Image.fromarray(grid).save(run / "samples" / f"fakes{name}.png")
            lines.append(log_line({"event": "metrics", "kimg": t[0], "fd_effnet": 100.0 - t[0] * 1000}))
            lines.append(log_line({"event": "snapshot", "kimg": t[0], "path": str(snap), "metrics": {}}))
    if error:
        lines.append(log_line({"event": "error", "message": error}))
    elif end:
        lines.append(log_line({"event": end, "kimg": 0.016}))
    (run / "log.jsonl").write_text("".join(lines))
    return run


@pytest.fixture
def app(tmp_path: Path):
    """No model loaded: the Train panel works without one."""
    with headless_explorer(tmp_path) as explorer:
        yield explorer


def kill_trainers(root: Path) -> None:
    """Teardown: a trainer a failed test left behind must not keep burning the CPU."""
    for pid_file in root.rglob(PID_FILE):
        proc = TrainProcess.find(pid_file.parent)
        if proc is not None:
            os.kill(proc.pid, signal.SIGKILL)


# ----------------------------------------------------------------------------- RunFollower / request

def test_follower_reads_incrementally_and_waits_for_partial_lines(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    f = RunFollower(tmp_path)
    assert not f.poll() and f.records == 0  # no log yet
    start = log_line({"event": "start", "start_kimg": 0.0, "config": {"kimg": 0.016}, "resolution": 16})
    first, second = log_line(tick_record(*TICKS[0])), log_line(tick_record(*TICKS[1]))
    cut = len(second) // 2
    log.write_text(start + first + "not json\n" + second[:cut])  # the trainer is mid-write of line 4
    assert f.poll()
    assert f.series["kimg"] == [0.004] and f.series["G_loss"] == [0.5] and f.bad_lines == 1
    assert f.total_kimg == 0.016 and f.resolution == 16 and f.progress == pytest.approx(0.25)
    assert not f.poll()  # nothing new and still no newline: the half line is not parsed
    with open(log, "a") as fh:
        fh.write(second[cut:] + log_line(tick_record(*TICKS[2])))
    assert f.poll()
    assert f.series["kimg"] == [0.004, 0.008, 0.012] and f.series["D_loss"] == [2.0, 1.5, 1.75]
    assert f.kimg == 0.012 and f.records == 4
    # ETA = remaining kimg x median sec/kimg of the recent ticks (robust to the slow first tick).
    assert f.sec_per_kimg() == 310.0 and f.eta_seconds() == pytest.approx(0.004 * 310.0)
    assert format_seconds(f.eta_seconds()) == "1s" and format_seconds(3725) == "1h02m"
    # A replaced log (a new run in the same directory) is read again from the start.
    log.write_text(start + first)
    assert f.poll() and f.series["kimg"] == [0.004] and f.kimg == 0.004
    # A resumed leg logs its own start: a new target, counting on from where it resumed.
    with open(log, "a") as fh:
        fh.write(log_line({"event": "stopped", "kimg": 0.004}))
        fh.write(log_line({"event": "start", "start_kimg": 0.004, "config": {"kimg": 0.05}}))
    assert f.poll() and f.total_kimg == 0.05 and f.kimg == 0.004 and f.last_event == "start" and not f.finished


def test_train_request_is_what_sgxl_train_parses(tmp_path: Path) -> None:
    req = TrainRequest(out=str(tmp_path / "run"), data=str(tmp_path / "ds"), preset="tiny", batch=4, kimg=0.02,
                       snap=0.5, tick=0.004, d_input_size=64, device="cpu", grow_from=str(tmp_path / "g.sgxl"),
                       keep_d=True, range_weight=1.5)
    args = build_parser().parse_args(req.args())
    assert (args.out, args.data, args.grow_from) == (str(tmp_path / "run"), str(tmp_path / "ds"),
                                                     str(tmp_path / "g.sgxl"))
    assert (args.batch, args.kimg, args.snap, args.tick, args.d_input_size) == (4, 0.02, 0.5, 0.004, 64)
    assert args.device == "cpu" and args.no_progress and args.cls_weight == 0.0 and args.resume is None
    assert args.range_weight == 1.5 and args.keep_d
    plain = build_parser().parse_args(TrainRequest(out="r", data="d").args())
    assert not plain.keep_d and plain.range_weight == 0.0
    resume = build_parser().parse_args(TrainRequest(out="r", resume="r", kimg=3.0, batch=4).args())
    # A resume keeps its saved config (batch is not passed), may raise the target kimg.
    assert resume.resume == str(Path("r").resolve()) and resume.kimg == 3.0 and resume.batch == 16
    assert resume.data is None


# ----------------------------------------------------------------------------- panel, headless

def test_dataset_validation_messages(app: Explorer, tmp_path: Path) -> None:
    def check(path: str) -> str:
        app.invoke("train.data", path)  # typing a path and pressing Enter
        return dpg.get_value("train.data_info")

    assert "choose a dataset" in check("")
    assert "does not exist" in check(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    assert "no images found" in check(str(tmp_path / "empty"))
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    assert "neither a folder nor a zip" in check(str(tmp_path / "broken.zip"))
    assert app.train_panel.dataset is None
    app.invoke("train.start")  # refused with the reason; no process started
    assert app.train_panel.proc is None and app.train_panel.status_error
    assert "cannot start" in app.train_panel.status_text and "neither a folder nor a zip" in app.train_panel.status_text

    good = write_dataset(tmp_path / "ds16")
    info = check(str(good))
    assert info.startswith("16 images, 2 classes (class0, class1), 16x16 (folder)")
    assert "16x16 stem" in info and app.train_panel.dataset.num_images == 16
    big = write_dataset(tmp_path / "ds32", res=32, classes=1, per_class=3)
    info = check(str(big))
    assert info.startswith("3 images, 1 classes (class0), 32x32") and "grow-from" in info


def test_attach_shows_curves_metrics_sample_and_snapshots(app: Explorer, tmp_path: Path, snapshot_file) -> None:
    run = make_run(tmp_path, snapshot_file)
    dpg.set_value("train.run_dir", str(run))
    app.invoke("train.attach")
    panel = app.train_panel
    assert not panel.running and not panel.status_error and panel.status_text == "done: 0.016 kimg in run"
    xs = [t[0] for t in TICKS]
    assert dpg.get_value("train.series.G_loss")[:2] == [xs, [t[2] for t in TICKS]]
    assert dpg.get_value("train.series.D_loss")[:2] == [xs, [t[3] for t in TICKS]]
    assert dpg.get_value("train.series.sec_per_kimg")[:2] == [xs, [t[1] for t in TICKS]]
    assert dpg.get_value("train.series.metric.fd_effnet")[:2] == [[0.008, 0.016], [92.0, 84.0]]
    assert dpg.get_value("train.progress") == pytest.approx(0.016 / 0.02)
    # sec/kimg = median of the last ticks (900, 300, 310, 290): the slow first tick does not skew it.
    assert dpg.get_item_configuration("train.progress")["overlay"].startswith("0.016 / 0.020 kimg, 305 s/kimg")
    st = panel.test_state()
    assert st["snapshots"] == [str(run / "snapshots" / "snapshot-000000016.sgxl"),
                               str(run / "snapshots" / "snapshot-000000008.sgxl")]  # newest first
    assert dpg.get_item_user_data("train.open.1") == st["snapshots"][1]
    # The newest sample grid is on screen, in the one texture the panel owns.
    assert st["sample"] == str(run / "samples" / "fakes000000016.png") and st["sample_shape"] == [32, 64]
    texture = panel._texture
    assert dpg.get_item_type(texture) == "mvAppItemType::mvStaticTexture"
    cfg = dpg.get_item_configuration("train.sample")
    assert (cfg["width"], cfg["height"]) == (384, 192)  # 64x32 grid, the largest whole multiple that fits
    # "Open" loads that snapshot into the explorer.
    app.invoke("train.open.1")
    app.tick()  # the renderer's "loaded" event
    assert app.info is not None and app.info.path == str(run / "snapshots" / "snapshot-000000008.sgxl")
    assert app.info.resolution == 16 and app.info.c_dim == 2
    # Another run without samples: the texture goes (a texture nobody sees must not stay).
    other = tmp_path / "other"
    other.mkdir()
    (other / "log.jsonl").write_text(log_line({"event": "start", "start_kimg": 0.0, "config": {"kimg": 1.0}}))
    assert panel.attach(str(other))
    assert not dpg.does_item_exist(texture) and not dpg.does_item_exist("train.sample")
    assert panel.test_state()["snapshots"] == [] and dpg.get_value("train.series.G_loss")[0] == []
    assert not dpg.does_item_exist("train.series.metric.fd_effnet")
    assert "not running" in panel.status_text  # a log with a start but no end: the trainer died


def test_live_log_appends_to_the_plots(app: Explorer, tmp_path: Path, snapshot_file) -> None:
    run = make_run(tmp_path, snapshot_file, end=None)
    (run / "log.jsonl").write_text("".join((run / "log.jsonl").read_text().splitlines(True)[:2]))  # start+1 tick
    panel = app.train_panel
    assert panel.attach(str(run))
    assert dpg.get_value("train.series.G_loss")[1] == [0.5]
    with open(run / "log.jsonl", "a") as fh:
        fh.write(log_line(tick_record(*TICKS[1])))
        fh.write(log_line(tick_record(*TICKS[2]))[:20])  # half written
    panel.tick(app.clock() + 10)  # polls at most every POLL_S
    assert dpg.get_value("train.series.G_loss")[1] == [0.5, -1.0]
    assert dpg.get_value("train.progress") == pytest.approx(0.4)


def test_error_event_shows_and_last_snapshot_stays_loadable(app: Explorer, tmp_path: Path, snapshot_file) -> None:
    msg = "loss became nan (G_loss) at kimg 0.02; the last snapshot is intact — try a lower learning rate"
    run = make_run(tmp_path, snapshot_file, error=msg)
    panel = app.train_panel
    assert panel.attach(str(run))
    assert panel.status_error and msg in panel.status_text
    assert "last good snapshot (0.016 kimg) is intact" in panel.status_text
    app.invoke("train.open.0")
    app.tick()
    assert app.info.path == str(run / "snapshots" / "snapshot-000000016.sgxl")


def test_resume_requests(app: Explorer, tmp_path: Path, snapshot_file) -> None:
    panel = app.train_panel
    run = make_run(tmp_path, snapshot_file, end="stopped")  # stopped at 0.016 of 0.02
    dpg.set_value("train.run_dir", str(run))
    app.invoke("train.resume")  # no latest.sgxl: refused, in the panel
    assert panel.proc is None and panel.status_error and "no latest.sgxl snapshot to resume from" in panel.status_text
    shutil.copy(snapshot_file, run / "latest.sgxl")
    req = panel.request(resume=str(run))
    assert req.resume == str(run) and req.kimg is None  # not there yet: continue to the run's own target
    with open(run / "log.jsonl", "a") as fh:  # ... now it reached its target
        fh.write(log_line(tick_record(0.02, 300.0, 0.1, 1.0)) + log_line({"event": "done", "kimg": 0.02}))
    dpg.set_value("train.kimg", 0.5)
    assert panel.request(resume=str(run)).kimg == pytest.approx(0.52)  # the kimg field = how much further


def test_attach_to_a_non_run_directory(app: Explorer, tmp_path: Path) -> None:
    dpg.set_value("train.run_dir", str(tmp_path))
    app.invoke("train.attach")
    assert app.train_panel.status_error and "no log.jsonl here" in app.train_panel.status_text
    assert app.train_panel.follower is None


def test_failing_trainer_reports_its_error(app: Explorer, tmp_path: Path) -> None:
    """A real `sgxl train` child that fails at once (a 32x32 dataset without grow-from): exit code + stderr."""
    ds = write_dataset(tmp_path / "ds32", res=32, classes=2, per_class=2)
    app.invoke("train.data", str(ds))
    dpg.set_value("train.run_dir", str(tmp_path / "run"))
    dpg.set_value("train.device", "cpu")
    try:
        app.invoke("train.start")
        panel = app.train_panel
        assert panel.running and panel.status_text.startswith("starting")
        pid = panel.proc.pid
        # Its own session: a Ctrl-C or a crash of the GUI does not reach the trainer.
        assert os.getsid(pid) == pid != os.getsid(0)
        assert json.loads((tmp_path / "run" / PID_FILE).read_text())["pid"] == pid
        assert dpg.is_item_shown("train.stop") and not dpg.is_item_shown("train.start")
        deadline = time.time() + 180  # the child imports torch before it refuses the dataset: slow under load
        while panel.proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        panel.poll()
        assert panel.proc.poll() == 2 and panel.status_error
        assert "exit code 2" in panel.status_text
        assert "error: training starts with the 16² stem, but the dataset is 32²" in panel.status_text
        assert dpg.is_item_shown("train.start") and not dpg.is_item_shown("train.stop")
    finally:
        kill_trainers(tmp_path)


# ----------------------------------------------------------------------------- the real window

def centre(rect: dict, max_w: float = 60) -> tuple[int, int]:
    return int(rect["x"] + min(rect["w"], max_w) / 2), int(rect["y"] + rect["h"] / 2)


def settle(app, st: dict, frames: int = 3) -> dict:
    n = st["ui_frames"]
    return app.wait_for("UI frames", lambda s: s["ui_frames"] >= n + frames)


def show_train_widget(app, name: str, index: int | None = None) -> dict:
    """Scroll the left column (mouse wheel, as a user would) until the widget is inside it; its rect."""
    def rect_of(s: dict) -> dict | None:
        r = s["train"]["rects"].get(name)
        return r[index] if index is not None and r and len(r) > index else (r if index is None else None)

    st = app.wait_for(f"{name} exists", lambda s: rect_of(s) is not None)
    for _ in range(30):
        r, left = rect_of(st), st["rects"]["left"]
        top, bottom = left["y"] + 4, left["y"] + left["h"] - 8
        if r["visible"] and r["y"] >= top and r["y"] + r["h"] <= bottom:
            return r
        wheel = 5 if r["y"] + r["h"] > bottom else 4  # 5 = scroll down
        app.xdotool("mousemove", int(left["x"] + left["w"] / 2), int(left["y"] + 200), "click", wheel)
        st = settle(app, st)
    raise AssertionError(f"could not scroll {name} into view: {rect_of(st)}")


def type_into(app, name: str, text: str, tries: int = 3) -> None:
    """Click the field and type; again if the panel moved under the click (e.g. a status line wrapped)."""
    def took(s: dict) -> bool:
        value = s["train"]["fields"].get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value == pytest.approx(float(text))
        return value is None or str(value) == text  # fields the state does not report: trust the typing
    for attempt in range(tries):
        x, y = centre(show_train_widget(app, name))
        app.xdotool("mousemove", x, y, "click", 1, "sleep", 0.1, "key", "ctrl+a", "type", "--delay", "15", text)
        app.xdotool("key", "Return")
        try:
            app.wait_for(f"{name} typed", took, timeout=15)
            return
        except AssertionError:
            if attempt == tries - 1:
                raise


def click(app, name: str, index: int | None = None) -> None:
    x, y = centre(show_train_widget(app, name, index))
    app.xdotool("mousemove", x, y, "sleep", 0.1, "click", 1)


@pytest.mark.gui
def test_start_watch_stop_and_open_from_the_window(launch, gui_tools, tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds", res=16, classes=2, per_class=8)
    run = tmp_path / "run"
    app = launch(None)
    try:
        st = app.wait_for("first frame", lambda s: s["ui_frames"] > 2, timeout=60)
        # Make room the way a user would: fold the latent panel, unfold Train.
        x, y = centre(st["rects"]["latent_header"], 120)
        app.xdotool("mousemove", x, y, "click", 1)
        st = app.wait_for("latent folded", lambda s: not s["rects"]["seed_slider"]["visible"])
        st = settle(app, st)  # the headers below have moved up
        x, y = centre(st["train"]["rects"]["header"], 120)
        app.xdotool("mousemove", x, y, "sleep", 0.1, "click", 1)
        app.wait_for("train panel open", lambda s: s["train"]["rects"]["data"]["visible"])

        type_into(app, "data", str(ds))
        st = app.wait_for("dataset checked", lambda s: s["train"]["dataset"].startswith("16 images"))
        # kimg 0.4 = 100 steps: far more than this test waits for (it stops after the first tick), so a fast
        # machine cannot finish the run before Stop is clicked; one tick = one step of 4 images.
        typed = {"batch": 4, "kimg": 0.4, "snap": 1.0, "tick": 0.004, "d_input": 64, "run_dir": str(run)}
        for name, value in typed.items():
            type_into(app, name, str(value))
        st = app.wait_for("options typed", lambda s: all(
            s["train"]["fields"][k] == pytest.approx(v) if isinstance(v, float) else s["train"]["fields"][k] == v
            for k, v in typed.items()))
        assert st["train"]["fields"]["preset"] == "tiny" and st["train"]["fields"]["device"] == "cpu"
        shot = app.screenshot("train_01_options")
        assert shot.shape == (1000, 1600, 3)

        click(app, "start")
        st = app.wait_for("trainer running", lambda s: s["train"]["running"], timeout=60)
        assert st["train"]["run_dir"] == str(run) and not st["train"]["status_error"], st["train"]["status"]
        cmd = json.loads((run / PID_FILE).read_text())["cmd"]
        assert cmd[cmd.index("--batch") + 1] == "4" and cmd[cmd.index("--d-input-size") + 1] == "64"
        assert cmd[cmd.index("--kimg") + 1] == "0.4" and cmd[cmd.index("--data") + 1] == str(ds)
        st = app.wait_for("first tick", lambda s: s["train"]["ticks"] >= 1 or not s["train"]["running"],
                          timeout=120)
        assert st["train"]["running"], st["train"]["status"]
        tr = st["train"]
        assert tr["total_kimg"] == 0.4 and tr["kimg"] >= 0.004 and tr["progress"] == pytest.approx(tr["kimg"] / 0.4)
        assert f"{tr['kimg']:.3f} / 0.400 kimg" in tr["progress_overlay"] and "ETA" in tr["progress_overlay"]
        app.screenshot("train_02_running")

        click(app, "stop")
        st = app.wait_for("final snapshot", lambda s: not s["train"]["running"] and s["train"]["snapshots"],
                          timeout=120)
        assert st["train"]["last_event"] == "stopped" and not st["train"]["status_error"], st["train"]["status"]
        assert "stopped at" in st["train"]["status"]
        snap = Path(st["train"]["snapshots"][0])
        assert snap.parent == run / "snapshots" and (run / "latest.sgxl").is_file()
        ckpt = load_checkpoint(snap)
        assert ckpt.meta["final"] is True and ckpt.kimg == st["train"]["kimg"] < 0.4
        assert st["train"]["sample"] and Path(st["train"]["sample"]).parent == run / "samples"
        app.screenshot("train_03_stopped")

        click(app, "open", 0)
        st = app.wait_shown("snapshot opened", lambda s: s["model"] is not None and s["model"]["path"] == str(snap),
                            timeout=60)
        assert st["model"]["resolution"] == 16 and st["model"]["c_dim"] == 2 and not st["status_error"]
        app.screenshot("train_04_opened")
    finally:
        kill_trainers(tmp_path)
