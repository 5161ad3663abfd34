"""A/B training runs: one `sgxl train` per arm (subprocesses), the same kimg each, then metrics and grids.

    python bench/ab_train.py --data runs/ab/data/emoji16.zip --kimg 20            # all default arms, one by one
    python bench/ab_train.py --build-data --arms official,d64 --kimg 0.2           # smoke test
    python bench/ab_train.py --data D.zip --parallel 4 --device cuda --kimg 50     # arms side by side on a GPU
    python bench/ab_train.py --arm "mine=--d-input-size 128 --blur-fade-kimg 10"   # an extra arm
    python bench/ab_train.py --list                                                # what each arm runs

Every arm trains the same 16² stem from scratch (`--preset demo --batch 16 --mirror --seed 0` unless
`--common` says otherwise) into `<root>/<arm>` (default runs/ab/, git-ignored), so a stopped A/B can be
run again: a finished arm is not retrained, an unfinished one continues with `sgxl train --resume`.
An arm may name a git revision (`ref`): it then runs that commit's code from a git worktree in
`<root>/_src/<ref>` (the way to compare with the recipe before a change that has no flag; `git worktree remove
<root>/_src/<ref>` when done). Metrics are
computed by this checkout's `sgxl metrics` for every arm alike: fd_effnet and precision/recall at
`--num` generated vs `--num` real images, and class_acc when this checkout's metrics know it.

Writes `<root>/results.json` and `<root>/results.md` (a table: wall and CPU seconds per kimg, CPU-hours,
wall time, metrics, grid) and,
per arm, `grid.png` (`sgxl generate`: one row per class, seeds 0-7), `metrics.json`, `train.out`.
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
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMON = "--preset demo --batch 16 --mirror --seed 0"


@dataclass
class Arm:
    name: str
    flags: str  # `sgxl train` options on top of the common ones
    note: str
    ref: str | None = None  # git revision whose code runs this arm (None: this checkout)
    result: dict = field(default_factory=dict)


# One arm per change that matters (issue 18). "official" is this checkout's default recipe (the official
# mechanics with the official D input 224 and blur fade 300 kimg); the others change one thing.
ARMS = {
    "official": Arm("official", "", "this checkout's defaults: official mechanics, D input 224, blur over 300 kimg"),
    "synthesis-emas": Arm("synthesis-emas", "--synthesis-emas", "before the EMA fix: the D phase updates the "
                          "synthesis magnitude EMAs (StyleGAN3's habit), all else official"),
    "d64": Arm("d64", "--d-input-size 64", "D input 64 (cheaper on a CPU)"),
    "d128": Arm("d128", "--d-input-size 128", "D input 128"),
    "d224": Arm("d224", "--d-input-size 224", "D input 224 (official; same as official, listed for the D-size row)"),
    "blur-short": Arm("blur-short", "--blur-fade-kimg 5", "blur fades over 5 kimg instead of 300"),
    "old-recipe": Arm("old-recipe", "", "the code before issue 18's fixes (commit a65253a): synthesis EMAs drift, "
                      "exp blur kernel, no lazy-reg Adam scaling, mean losses, random class embeddings",
                      ref="a65253a"),
}
DEFAULT_ARMS = "official,synthesis-emas,d64,d128,blur-short"


SGXL = [sys.executable, "-m", "core.cli"]  # run with cwd and PYTHONPATH = the source tree of the arm


def env_for(src: Path, threads: int | None) -> dict:
    path = os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH", "")]))
    env = dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1")
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def source_tree(root: Path, ref: str | None) -> Path:
    """This checkout, or a detached git worktree of `ref` under <root>/_src (made once, reused)."""
    if ref is None:
        return REPO
    sha = subprocess.run(["git", "rev-parse", "--short", ref], cwd=REPO, check=True, capture_output=True,
                         text=True).stdout.strip()
    tree = root / "_src" / sha
    if not (tree / "core").is_dir():
        tree.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=REPO, check=True)
    return tree


def read_log(run: Path) -> list[dict]:
    path = run / "log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def trained_kimg(run: Path) -> float:
    done = [r["kimg"] for r in read_log(run) if r.get("event") in ("done", "stopped", "snapshot")]
    return max(done, default=0.0) if (run / "latest.sgxl").exists() else 0.0


def train_arm(arm: Arm, args: argparse.Namespace, threads: int | None) -> None:
    run = (args.root / arm.name).resolve()
    src = REPO if args.dry_run else source_tree(args.root.resolve(), arm.ref)
    have = trained_kimg(run)
    if have >= args.kimg - 1e-9:
        print(f"[{arm.name}] already at {have:g} kimg: not retrained", flush=True)
        arm.result["resumed"] = "finished before"
        return
    if have > 0:  # continue where the run stopped, with its own settings
        cmd = [*SGXL, "train", "--resume", str(run), "--kimg", str(args.kimg), "--no-progress"]
        arm.result["resumed"] = f"from {have:g} kimg"
    else:
        cmd = [*SGXL, "train", "--data", str(args.data.resolve()), "--out", str(run), "--kimg", str(args.kimg),
               "--device", args.device, "--snap", str(args.snap), "--no-progress",
               *shlex.split(args.common), *shlex.split(arm.flags)]
    if args.deadline is not None and time.time() > args.deadline - 30:
        arm.result["error"] = "not started: the time limit was (nearly) reached"
        return
    run.mkdir(parents=True, exist_ok=True)
    print(f"[{arm.name}] {shlex.join(cmd)}" + (f"  (with the code of {arm.ref})" if arm.ref else ""), flush=True)
    if args.dry_run:
        return
    t0 = time.time()
    with open(run / "train.out", "a") as out:
        proc = subprocess.Popen(cmd, cwd=src, env=env_for(src, threads), stdout=out, stderr=subprocess.STDOUT)
        returncode = wait_until(proc, args.deadline)
    arm.result["train_wall_s"] = round(time.time() - t0, 1)
    if returncode == "stopped":
        arm.result["stopped_at_time_limit"] = True
    elif returncode != 0:
        arm.result["error"] = f"sgxl train exited {returncode}; see {run / 'train.out'}"
        print(f"[{arm.name}] FAILED: {arm.result['error']}", flush=True)


def wait_until(proc: subprocess.Popen, deadline: float | None) -> int | str:
    """The exit code; at the deadline, SIGINT (sgxl train then writes a final snapshot) and "stopped"."""
    try:
        return proc.wait(timeout=None if deadline is None else max(deadline - time.time(), 0.1))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return "stopped"


def metric_names() -> str:
    """fd_effnet and pr, plus class_acc when this checkout's `sgxl metrics` has it (another helper adds it)."""
    sys.path.insert(0, str(REPO))
    from core.metrics.api import parse_metrics

    try:
        parse_metrics("class_acc")
        return "fd_effnet,pr,class_acc"
    except Exception:
        return "fd_effnet,pr"


def measure_arm(arm: Arm, args: argparse.Namespace, metrics: str) -> None:
    run = (args.root / arm.name).resolve()
    ckpt = run / "latest.sgxl"
    if args.dry_run or not ckpt.exists():
        return
    env = env_for(REPO, None)
    out = run / "metrics.json"
    cache = (args.root / "_metrics_cache").resolve()
    cmd = [*SGXL, "metrics", "--ckpt", str(ckpt), "--data", str(args.data.resolve()), "--metrics", metrics,
           "--num", str(args.num), "--num-real", str(args.num), "--out", str(out), "--cache-dir", str(cache)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        arm.result["metrics_error"] = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
    else:
        report = json.loads(out.read_text())
        for name, value in report["metrics"].items():
            arm.result[name] = value["value"]
    grid = run / "grid.png"
    subprocess.run([*SGXL, "generate", "--ckpt", str(ckpt), "--classes", "all", "--seeds", "0-7",
                    "--out", str(grid)], cwd=REPO, env=env, capture_output=True, text=True)
    if grid.exists():
        arm.result["grid"] = str(grid.relative_to(args.root.resolve()))
    arm.result["kimg"] = trained_kimg(run)
    arm.result.update(training_cost(read_log(run), arm.result["kimg"]))


def training_cost(log: list[dict], kimg: float) -> dict:
    """Median wall and CPU seconds per kimg over the run's ticks, and the CPU-hours for `kimg` (the CPU time
    hardly depends on what else shared the machine, the wall time does; a run at one resolution costs the same
    per kimg throughout). Logs of older code have no CPU time: then only the wall time."""
    cost = {}
    wall = [r["sec_per_kimg"] for r in log if "sec_per_kimg" in r]
    if wall:
        cost["sec_per_kimg"] = round(statistics.median(wall), 2)
    cpu = [r["cpu_sec_per_kimg"] for r in log if "cpu_sec_per_kimg" in r]
    if cpu:
        cost["cpu_sec_per_kimg"] = round(statistics.median(cpu), 2)
        cost["cpu_hours"] = round(statistics.median(cpu) * kimg / 3600, 3)
    return cost


def write_report(arms: list[Arm], args: argparse.Namespace, metrics: str) -> None:
    root = args.root.resolve()
    payload = {"benchmark": "ab_train", "data": str(args.data), "kimg": args.kimg, "common": args.common,
               "num": args.num, "metrics": metrics, "device": args.device, "parallel": args.parallel,
               "arms": [asdict(a) for a in arms]}
    (root / "results.json").write_text(json.dumps(payload, indent=2))
    cols = ["kimg", "sec_per_kimg", "cpu_sec_per_kimg", "cpu_hours", "train_wall_s", "fd_effnet", "precision_effnet",
            "recall_effnet"]
    cols += sorted({k for a in arms for k in a.result if k.startswith("class_acc")}) or ["class_acc"]
    short = any(float(a.result.get("kimg") or 0) < args.kimg for a in arms)
    stopped = " (not reached: stopped by --time-limit; each arm measured at its kimg column)" if short else ""
    lines = [f"A/B to {args.kimg:g} kimg per arm{stopped}, common flags `{args.common}`, metrics at {args.num} vs "
             f"{args.num} images ({metrics}); device {args.device}, {args.parallel} arm(s) at a time.", "",
             "| arm | flags | " + " | ".join(cols) + " | grid |", "|" + "---|" * (len(cols) + 3)]
    for a in arms:
        flags = (a.flags or "(defaults)") + (f" @ {a.ref}" if a.ref else "")
        values = [_fmt(a.result.get(c)) for c in cols]
        grid = f"![{a.name}]({a.result['grid']})" if "grid" in a.result else a.result.get("error", "")
        lines.append(f"| {a.name} | `{flags}` | " + " | ".join(values) + f" | {grid} |")
    lines += ["", *[f"- **{a.name}**: {a.note}" for a in arms]]
    (root / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {root / 'results.json'} and {root / 'results.md'}")


def _fmt(v) -> str:
    if v is None:
        return "–"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def build_data(dest: Path, res: int) -> None:
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([*SGXL, "dataset", "--preset", "noto-emoji", "--res", str(res), "--labels", "subgroup",
                    "--dest", str(dest)], cwd=REPO, env=env_for(REPO, None), check=True)


def parse_arms(args: argparse.Namespace) -> list[Arm]:
    arms = []
    for name in filter(None, (n.strip() for n in args.arms.split(","))):
        if name not in ARMS:
            raise SystemExit(f"error: unknown arm {name!r}; known: {', '.join(ARMS)} (or --arm NAME=FLAGS)")
        arms.append(Arm(**{k: v for k, v in asdict(ARMS[name]).items() if k != "result"}))
    for spec in args.arm:
        name, _, rest = spec.partition("=")
        flags, _, ref = rest.partition("@")
        arms.append(Arm(name.strip(), flags.strip(), "custom arm", ref.strip() or None))
    names = [a.name for a in arms]
    if len(set(names)) != len(names) or not arms:
        raise SystemExit("error: give at least one arm, each name once")
    return arms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("runs/ab/data/emoji16.zip"), help="16² training set")
    ap.add_argument("--build-data", action="store_true", help="build --data with `sgxl dataset --preset noto-emoji "
                    "--res 16 --labels subgroup` when it does not exist (needs the Noto font and unicode-data)")
    ap.add_argument("--root", type=Path, default=Path("runs/ab"), help="run directories (default runs/ab)")
    ap.add_argument("--arms", default=DEFAULT_ARMS, help=f"comma separated, from {', '.join(ARMS)} "
                    f"(default {DEFAULT_ARMS}); '' for none")
    ap.add_argument("--arm", action="append", default=[], metavar="NAME=FLAGS[@REF]",
                    help="an extra arm: sgxl train flags, optionally run with the code of git revision REF")
    ap.add_argument("--kimg", type=float, default=20.0, help="kimg per arm (default 20)")
    ap.add_argument("--snap", type=float, default=5.0, help="snapshot every N kimg (default 5)")
    ap.add_argument("--common", default=COMMON, help=f"flags every new arm gets (default '{COMMON}')")
    ap.add_argument("--num", type=int, default=500, help="generated and real images per metric (default 500)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    ap.add_argument("--parallel", type=int, default=1, help="arms trained at the same time (default 1); on a CPU "
                    "each gets cores / N threads")
    ap.add_argument("--time-limit", type=float, help="seconds of training in all: then every running arm is stopped "
                    "(SIGINT: a final snapshot) and measured at the kimg it reached (a later call resumes it)")
    ap.add_argument("--no-metrics", action="store_true", help="train only")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    ap.add_argument("--list", action="store_true", help="list the known arms and exit")
    args = ap.parse_args(argv)
    if args.list:
        for a in ARMS.values():
            print(f"{a.name:15} {a.flags or '(defaults)':28} {a.note}")
        return 0
    arms = parse_arms(args)
    if args.parallel < 1 or args.kimg <= 0 or args.num < 2:
        raise SystemExit("error: --parallel >= 1, --kimg > 0 and --num >= 2")
    if args.build_data:
        build_data(args.data, 16)
    if not args.data.exists() and not args.dry_run:
        raise SystemExit(f"error: no dataset at {args.data}; pass --build-data or --data")
    args.root.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // args.parallel) if args.device == "cpu" and args.parallel > 1 else None
    args.deadline = time.time() + args.time_limit if args.time_limit else None
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        list(pool.map(lambda a: train_arm(a, args, threads), arms))
    metrics = "" if args.no_metrics else metric_names()
    if metrics:
        # The first arm alone fills the real-data caches (features, class probe); on a GPU the rest then run
        # side by side like the training did (on a CPU one at a time: they would only compete for the cores).
        measure_arm(arms[0], args, metrics)
        workers = args.parallel if args.device != "cpu" else 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda a: measure_arm(a, args, metrics), arms[1:]))
    if not args.dry_run:
        write_report(arms, args, metrics)
    return 1 if any("error" in a.result for a in arms) else 0


if __name__ == "__main__":
    sys.exit(main())
