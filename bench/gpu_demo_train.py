"""Train the demo model 16² -> 32² -> 64² inside a fixed wall-time budget (one GPU run; works on a CPU too).

    bash bench/gpu_demo_train.sh --data-dir .gpu_data --minutes 6            # what the device run does
    python bench/gpu_demo_train.py --data-dir D --minutes 1 --fixed-kimg 0.05  # CPU smoke test

1. (optional, --ab) the A/B arms of bench/ab_train.py at 16², side by side, for --ab-minutes.
2. Calibration: `sgxl train` at 16² for --calibrate-s seconds (thrown away): kimg/min of the recipe, after the
   first tick (warm-up), and the start-up cost of one `sgxl train`.
3. Stages: the time left is split over 16² / 32² / 64² (--split); each stage's kimg = measured rate x its
   slice x --slowdown (32² and 64² steps cost a little more: the D at its 224 input dominates). Each stage is
   one `sgxl train` (the 16² stem, then --grow-from the previous stage's snapshot); one that overruns its
   slice by --grace-s is stopped with SIGINT, which writes its final snapshot.
4. Into --out ($OUT on the device): demo.sgxl (G_ema export of the 64² stage), stage16/32/64.png (every class x
   seeds 0-7), runs.tar.gz (logs and sample grids of every run, no snapshots), summary.json, ab.tar.gz with --ab.

The recipe is the official one (D input 224, batch 64, fresh D per stage, lazy-reg Adam, official losses), with
`--mirror`; the blur fade is --blur-fade-kimg (default: official 300), anything else via --stage-flags.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SGXL = [sys.executable, "-m", "core.cli"]
RESOLUTIONS = (16, 32, 64)


def repo_env(**extra: str) -> dict:
    """This checkout first on PYTHONPATH, then whatever was there (e.g. wheels installed for the run)."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    return dict(os.environ, PYTHONPATH=path, **extra)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def read_log(run: Path) -> list[dict]:
    path = run / "log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_sgxl(cmd: list[str], out_file: Path, deadline: float | None) -> tuple[int | str, float]:
    """Run `sgxl ...` to its end or until `deadline` (then SIGINT: a final snapshot); -> (exit code or "stopped", s)."""
    t0 = time.time()
    with open(out_file, "a") as out:
        out.write(f"$ {shlex.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env=repo_env(PYTHONUNBUFFERED="1"))
        try:
            code: int | str = proc.wait(timeout=None if deadline is None else max(deadline - time.time(), 1.0))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=300)  # the final snapshot; minutes on a loaded CPU
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            code = "stopped"
    return code, time.time() - t0


def find_zip(data_dir: Path, res: int) -> Path:
    hits = sorted(data_dir.glob(f"*{res}.zip")) or sorted(data_dir.glob(f"*{res}*.zip"))
    if not hits:
        raise SystemExit(f"error: no dataset zip for {res}² in {data_dir} (expected e.g. emoji{res}.zip, made with "
                         f"`sgxl dataset --preset noto-emoji --res {res} --labels subgroup --dest emoji{res}.zip`)")
    return hits[0]


def train_flags(args: argparse.Namespace) -> list[str]:
    return ["--batch", str(args.batch), "--d-input-size", str(args.d_input_size), "--device", args.device,
            "--blur-fade-kimg", str(args.blur_fade_kimg), "--tick", str(args.tick), "--no-progress",
            *shlex.split(args.stage_flags)]


def calibrate(args: argparse.Namespace, data16: Path) -> dict:
    """kimg/min of a 16² run after its first tick, and the seconds from launch to its first tick (start-up)."""
    run = args.root / "calibration"
    cmd = [*SGXL, "train", "--data", str(data16), "--out", str(run), "--preset", args.preset, "--kimg", "100000",
           "--snap", "100000", *train_flags(args)]
    t0 = time.time()
    code, wall = run_sgxl(cmd, args.root / "calibration.out", t0 + args.calibrate_s)
    ticks = [r for r in read_log(run) if "sec_per_kimg" in r]
    start = next((r["time"] for r in read_log(run) if r.get("event") == "start"), None)
    if not ticks:
        raise SystemExit(f"error: calibration made no progress in {args.calibrate_s:.0f} s (exit {code}); see "
                         f"{args.root / 'calibration.out'}")
    steady = [r["sec_per_kimg"] for r in ticks[1:]] or [ticks[0]["sec_per_kimg"]]
    rate = 60.0 / statistics.median(steady)
    startup = (start - t0) if start else 0.0
    result = {"kimg_per_min": round(rate, 3), "startup_s": round(startup, 1), "ticks": len(ticks),
              "kimg": ticks[-1]["kimg"], "wall_s": round(wall, 1)}
    log(f"calibration: {rate:.3g} kimg/min at 16² (batch {args.batch}, D input {args.d_input_size}), "
        f"start-up {startup:.0f} s")
    return result


def pick_blur_fade(args: argparse.Namespace) -> float:
    """--blur-fade-kimg as a number; 'auto' takes the A/B's verdict between the official 300 kimg fade and a short one.

    A short run sees only a sliver of the official 300 kimg fade (a 16² stem of the paper trains for millions of
    images), so its D may see blurred images throughout; which is better here is what the A/B measures.
    """
    if args.blur_fade_kimg != "auto":
        return float(args.blur_fade_kimg)
    results = args.root / "ab" / "results.json"
    if not results.exists():
        log("blur fade: auto without A/B results -> 300 kimg (official)")
        return 300.0
    arms = {a["name"]: a for a in json.loads(results.read_text())["arms"]}
    fd = {name: arms.get(name, {}).get("result", {}).get("fd_effnet") for name in ("official", "blur-short")}
    if fd["official"] is None or fd["blur-short"] is None:
        log(f"blur fade: auto, but the A/B has no fd_effnet for both arms ({fd}) -> 300 kimg (official)")
        return 300.0
    from bench.ab_train import ARMS

    short = float(shlex.split(ARMS["blur-short"].flags)[-1])  # that arm's `--blur-fade-kimg N`
    fade = short if fd["blur-short"] < fd["official"] else 300.0
    log(f"blur fade: auto -> {fade:g} kimg (A/B fd_effnet: official {fd['official']:.1f}, blur-short "
        f"{fd['blur-short']:.1f})")
    return fade


def export_grid(ckpt: Path, dest: Path) -> None:
    subprocess.run([*SGXL, "generate", "--ckpt", str(ckpt), "--classes", "all", "--seeds", "0-7", "--out", str(dest)],
                   cwd=REPO, env=repo_env(), capture_output=True, text=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True, help="folder with the dataset zips for 16², 32², 64²")
    ap.add_argument("--minutes", type=float, default=6.0, help="wall time for calibration + the 3 stages (default 6)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/gpu_demo/out")),
                    help="where the results go (default $OUT, else runs/gpu_demo/out)")
    ap.add_argument("--root", type=Path, default=Path("runs/gpu_demo"), help="run directories (default runs/gpu_demo)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--d-input-size", type=int, default=224)
    ap.add_argument("--blur-fade-kimg", default="300", help="kimg over which the D-input blur fades (default "
                    "300, official); 'auto': the fade of the better of the A/B arms 'official' and 'blur-short' "
                    "by fd_effnet (300 without --ab)")
    ap.add_argument("--tick", type=float, default=1.0, help="log every N kimg (default 1)")
    ap.add_argument("--stage-flags", default="--mirror", help="more `sgxl train` flags for every stage "
                    "(default --mirror); e.g. '--mirror --keep-d' is refused for the stem, use --grow-flags")
    ap.add_argument("--grow-flags", default="", help="flags for the 32² and 64² stages only (e.g. --keep-d)")
    ap.add_argument("--split", default="0.4,0.3,0.3", help="shares of the time for 16²,32²,64² (default 0.4,0.3,0.3)")
    ap.add_argument("--slowdown", default="1.0,0.85,0.7", help="expected rate of each stage relative to the 16² "
                    "calibration (default 1.0,0.85,0.7)")
    ap.add_argument("--calibrate-s", type=float, default=60.0, help="seconds of calibration (default 60; 0: none, "
                    "with --fixed-kimg)")
    ap.add_argument("--grace-s", type=float, default=20.0, help="a stage may overrun its slice by this much")
    ap.add_argument("--min-stage-s", type=float, default=60.0, help="every stage gets at least this (plus twice the "
                    "start-up) even past the budget, so the run always ends with a 64² model (default 60)")
    ap.add_argument("--reuse", action="store_true", help="keep stages that already finished under --root "
                    "(continue a run that ended early)")
    ap.add_argument("--fixed-kimg", type=float, help="train every stage this many kimg, whatever the calibration "
                    "says (tests)")
    ap.add_argument("--metrics-num", type=int, default=500, help="images for the final metrics and the A/B's "
                    "(0: no final metrics)")
    ap.add_argument("--ab", action="store_true", help="first run bench/ab_train.py's arms at 16² side by side")
    ap.add_argument("--ab-minutes", type=float, default=2.5)
    ap.add_argument("--ab-arms", default="official,synthesis-emas,d64,d128,blur-short")
    ap.add_argument("--ab-kimg", type=float, default=1000.0, help="kimg cap per arm (the time limit usually ends it)")
    args = ap.parse_args(argv)
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.root.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    data = {res: find_zip(args.data_dir, res).resolve() for res in RESOLUTIONS}
    split = [float(x) for x in args.split.split(",")]
    slowdown = [float(x) for x in args.slowdown.split(",")]
    summary: dict = {"device": args.device, "batch": args.batch, "d_input_size": args.d_input_size,
                     "preset": args.preset, "blur_fade_kimg": args.blur_fade_kimg, "stage_flags": args.stage_flags,
                     "grow_flags": args.grow_flags, "minutes": args.minutes,
                     "data": {k: str(v) for k, v in data.items()}}
    t_start = time.time()

    if args.ab:
        ab_root = args.root / "ab"
        cmd = [sys.executable, "bench/ab_train.py", "--data", str(data[16]), "--root", str(ab_root), "--arms",
               args.ab_arms, "--kimg", str(args.ab_kimg), "--device", args.device,
               "--parallel", str(len(args.ab_arms.split(","))), "--time-limit", str(args.ab_minutes * 60),
               "--snap", "100000", "--num", str(args.metrics_num or 500),
               "--common", f"--preset {args.preset} --batch {args.batch} --mirror --seed 0 --tick {args.tick}"]
        log(f"A/B: {shlex.join(cmd)}")
        code, wall = run_sgxl(cmd, args.root / "ab.out", None)
        summary["ab"] = {"exit": code, "wall_s": round(wall, 1)}
        with tarfile.open(args.out / "ab.tar.gz", "w:gz") as tar:
            for name in ("results.md", "results.json"):
                if (ab_root / name).exists():
                    tar.add(ab_root / name, arcname=f"ab/{name}")
            for grid in sorted(ab_root.glob("*/grid.png")):
                tar.add(grid, arcname=f"ab/{grid.parent.name}/grid.png")
            tar.add(args.root / "ab.out", arcname="ab/ab.out")
        log(f"A/B done in {wall:.0f} s (exit {code})")

    args.blur_fade_kimg = pick_blur_fade(args)
    summary["blur_fade_kimg"] = args.blur_fade_kimg
    t_demo = time.time()
    budget = args.minutes * 60
    rate = startup = None
    if args.calibrate_s > 0:
        summary["calibration"] = cal = calibrate(args, data[16])
        rate, startup = cal["kimg_per_min"], cal["startup_s"]
    elif args.fixed_kimg is None:
        raise SystemExit("error: without calibration (--calibrate-s 0) give --fixed-kimg")
    prev, stages = None, []
    for i, res in enumerate(RESOLUTIONS):
        left = budget - (time.time() - t_demo)
        # A stage always gets a minimum slice: past the budget, a late stage would otherwise be stopped during
        # its start-up and leave no model at all (seen in a CPU smoke run whose grids took minutes).
        min_slice = args.min_stage_s + 2 * (startup or 0)
        slice_s = max(left * split[i] / sum(split[i:]), min_slice)
        run = args.root / f"s{res}"
        if args.reuse and (run / "latest.sgxl").exists() and any(r.get("event") in ("done", "stopped")
                                                                   for r in read_log(run)):
            log(f"stage {res}²: reusing {run / 'latest.sgxl'} (--reuse)")
            stages.append({"res": res, "reused": True})
            if not (args.out / f"stage{res}.png").exists():
                export_grid(run / "latest.sgxl", args.out / f"stage{res}.png")
            prev = run
            continue
        if args.fixed_kimg is not None:
            kimg = args.fixed_kimg
        else:  # training time = the slice minus this command's start-up and its final snapshot
            kimg = max(rate * slowdown[i] * max(slice_s - startup - 5, 5) / 60, 0.1)
            kimg = round(kimg, 2)
        cmd = [*SGXL, "train", "--data", str(data[res]), "--out", str(run), "--kimg", str(kimg),
               "--snap", str(max(kimg, 0.001)), *train_flags(args)]
        cmd += ["--preset", args.preset] if prev is None else ["--grow-from", str(prev / "latest.sgxl"),
                                                              *shlex.split(args.grow_flags)]
        log(f"stage {res}²: {kimg:g} kimg in a {slice_s:.0f} s slice: {shlex.join(cmd)}")
        code, wall = run_sgxl(cmd, args.root / f"s{res}.out", time.time() + slice_s + args.grace_s)
        records = read_log(run)
        ticks = [r for r in records if "sec_per_kimg" in r]
        done = [r for r in records if r.get("event") in ("done", "stopped")]
        stage = {"res": res, "planned_kimg": kimg, "exit": code, "wall_s": round(wall, 1), "slice_s": round(slice_s, 1),
                 "end_kimg": done[-1]["kimg"] if done else None,
                 "kimg_per_min": round(60 / statistics.median([r["sec_per_kimg"] for r in ticks[1:] or ticks]), 3)
                 if ticks else None, "last": {k: ticks[-1].get(k) for k in ("G_loss", "D_loss", "blur_sigma")}
                 if ticks else {}}
        stages.append(stage)
        log(f"stage {res}²: exit {code}, {wall:.0f} s, ended at {stage['end_kimg']} kimg "
            f"({stage['kimg_per_min']} kimg/min)")
        if not (run / "latest.sgxl").exists():
            summary["stages"] = stages
            (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
            raise SystemExit(f"error: stage {res}² wrote no snapshot; see {args.root / f's{res}.out'}")
        export_grid(run / "latest.sgxl", args.out / f"stage{res}.png")
        prev = run
    summary["stages"] = stages
    summary["demo_wall_s"] = round(time.time() - t_demo, 1)

    final = prev / "latest.sgxl"
    subprocess.run([*SGXL, "convert", str(final), "--out", str(args.out / "demo.sgxl")], cwd=REPO, check=True,
                   env=repo_env(), capture_output=True)
    if args.metrics_num:
        from bench.ab_train import metric_names

        names = metric_names()
        mfile = args.root / "metrics64.json"
        proc = subprocess.run([*SGXL, "metrics", "--ckpt", str(final), "--data", str(data[64]), "--metrics", names,
                               "--num", str(args.metrics_num), "--num-real", str(args.metrics_num),
                               "--out", str(mfile)], cwd=REPO, env=repo_env(),
                              capture_output=True, text=True)
        summary["metrics"] = (json.loads(mfile.read_text())["metrics"] if proc.returncode == 0
                              else {"error": proc.stderr.strip()[-500:]})
    with tarfile.open(args.out / "runs.tar.gz", "w:gz") as tar:  # logs and sample grids, no snapshots
        for path in sorted(args.root.rglob("*")):
            rel = path.relative_to(args.root)
            skip = {"tensorboard", "_src", "_metrics_cache"} & set(rel.parts) or rel.parts[0] == "out"
            if path.is_file() and path.suffix != ".sgxl" and not skip:
                tar.add(path, arcname=f"gpu_demo/{rel}")
        # The last stage's full snapshot (G, G_ema, D without the frozen feature nets): lets a later session
        # continue this run with `sgxl train --resume` (small for the demo preset).
        if final.exists() and final.stat().st_size < 12 << 20:
            tar.add(final.resolve(), arcname=f"gpu_demo/{final.parent.name}/latest.sgxl")
    summary["total_wall_s"] = round(time.time() - t_start, 1)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"done in {summary['total_wall_s']:.0f} s: {sorted(p.name for p in args.out.iterdir())}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
