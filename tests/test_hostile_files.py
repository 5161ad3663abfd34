"""Hostile and broken checkpoints and datasets through the real CLI: one `error:` line, exit code 2,
within seconds of CPU time, bounded memory, nothing written.

Every case runs `core.cli.main(argv)` in ONE child process (torch is imported once): the child first
loads a valid checkpoint, so its peak RSS already holds everything a normal load needs, then runs the
cases under an address-space limit (a protection that failed must fail here, not exhaust the machine)
and reports per case the exit code, stderr, CPU seconds and how far its peak RSS grew (CPU time, not wall time:
a loaded machine stretches wall time, but a file that makes the loader work shows up in CPU time either way).
A few cases are also run as real `python -m core.cli` processes to check the exit code of the entry point itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from core.errors import CheckpointError
from core.io.checkpoint import load_checkpoint, save_checkpoint
from core.io.validate import (
    LIMITS,
    check_model_size,
    expected_state_shapes,
    generator_config_from_dict,
    model_size,
)
from core.networks.generator import Generator
from core.networks.presets import preset_config
from tests.helpers import OFFICIAL_FIXTURES, REPO, make_tiny_generator
from tests.hostile import (
    dataset_zip,
    deflated_zeros_member,
    patch_zip_size,
    png_bomb,
    png_bytes,
    read_sgxl,
    rewrite_sgxl,
    write_sgxl,
)

MAX_CPU_SECONDS = 10.0  # per refused case (the child is warm: torch and the CLI are imported)
MAX_RSS_GROWTH_MB = 300.0  # above the peak of loading a valid checkpoint

RUNNER = r"""
import contextlib, io, json, resource, sys, time, traceback
from core.cli import main

cases = json.loads(open(sys.argv[1]).read())
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    assert main(["info", sys.argv[2]]) == 0  # warm-up: imports + a normal load set the RSS baseline
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
vm_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1])
limit = (vm_kb + 4 * 2**20) * 1024  # 4 GB of address space beyond what is mapped now
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
results = {}
for name, argv in cases.items():
    out, err = io.StringIO(), io.StringIO()
    t, cpu = time.perf_counter(), time.process_time()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    except BaseException:
        rc = "exception"
        err.write(traceback.format_exc())
    results[name] = {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue(),
                     "seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - cpu,
                     "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}
print("RESULTS " + json.dumps(results))
"""


# ----------------------------------------------------------------------------- the hostile files

def _set(path: str, value):
    """config editor: set a dotted key of config.json (creating nothing: the key's parent must exist)."""
    def edit(cfg: dict) -> None:
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        node[last] = value
    return edit


def _sets(*pairs):
    def edit(cfg: dict) -> None:
        for path, value in pairs:
            _set(path, value)(cfg)
    return edit


def _tensor(name: str, make):
    def edit(t: dict) -> None:
        t[name] = make(t[name])
    return edit


def _nan(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x.view(-1)[0] = float("nan")
    return x


# name -> (editor of config.json or None, editor of tensors or None, expected words in the error line)
CONFIG_CASES = {
    "huge_channels": (_sets(("generator.synthesis.channel_base", 2**24),
                            ("generator.synthesis.channel_max", 16384)), None,
                      ["M parameters", "--allow-large"]),
    "plausible_but_huge": (_sets(("generator.mapping.c_dim", 100_000), ("generator.mapping.embed_dim", 4096),
                                 ("generator.mapping.w_dim", 4096), ("generator.synthesis.channel_base", 2**22),
                                 ("generator.synthesis.channel_max", 8192), ("class_names", None)), None,
                           ["M parameters", "--allow-large"]),
    "huge_activations": (_sets(("generator.synthesis.stem_resolution", 4096),
                               ("generator.synthesis.channel_max", 4096),
                               ("generator.synthesis.channel_base", 2**24)), None,
                         ["GB of activations", "--allow-large"]),
    "million_layers": (_set("generator.synthesis.num_layers", 1_000_000), None, ["num_layers", "1000000"]),
    "thousand_stages": (_set("generator.synthesis.stages", [{"up_factor": 2, "head_layers": 7}] * 1000), None,
                        ["1000 growth stages"]),
    "huge_w_dim": (_set("generator.mapping.w_dim", 10**9), None, ["w_dim"]),
    "billion_classes": (_set("generator.mapping.c_dim", 10**9), None, ["c_dim"]),
    "string_z_dim": (_set("generator.mapping.z_dim", "64"), None, ["z_dim", "must be an integer", "a string"]),
    "float_layers": (_set("generator.synthesis.num_layers", 6.5), None, ["num_layers", "integer"]),
    "bool_channels": (_set("generator.synthesis.img_channels", True), None, ["img_channels", "integer"]),
    "nan_cutoff": (_set("generator.synthesis.first_cutoff", float("nan")), None, ["first_cutoff", "range"]),
    "string_cutoff": (_set("generator.synthesis.first_cutoff", "2.0"), None, ["first_cutoff", "a number"]),
    "stages_object": (_set("generator.synthesis.stages", {"up_factor": 2}), None, ["stages", "list"]),
    "stage_bad_factor": (_set("generator.synthesis.stages", [{"up_factor": 3, "head_layers": 7}]), None,
                         ["up_factor", "power of two"]),
    "generator_list": (_set("generator", [1, 2, 3]), None, ["generator", "must be an object"]),
    "mapping_string": (_set("generator.mapping", "big"), None, ["generator.mapping", "must be an object"]),
    "unknown_field": (_set("generator.mapping.exec", "os.system"), None, ["unknown entries", "exec"]),
    "radial_string": (_set("generator.synthesis.use_radial_filters", "yes"), None, ["use_radial_filters"]),
    "class_names_number": (_set("class_names", 7), None, ["class_names"]),
    "class_names_count": (_set("class_names", ["a", "b"]), None, ["2 names for 5 classes"]),
    "meta_list": (_set("meta", [1]), None, ["meta", "object"]),
    "meta_kimg_string": (_set("meta.kimg", "lots"), None, ["meta.kimg"]),
    "version_string": (_set("version", "2"), None, ["version"]),
    "config_is_a_list": (lambda c: [c], None, ["config.json", "not a JSON object"]),
    "critical_eq_layers": (_sets(("generator.synthesis.num_critical", 6)), None, ["num_critical"]),
    "nan_weight": (None, _tensor("G.synthesis.L0_36_128.weight", _nan), ["G.synthesis.L0_36_128.weight",
                                                                          "non-finite"]),
    "inf_w_avg": (None, _tensor("G.mapping.w_avg", lambda x: x + float("inf")), ["G.mapping.w_avg", "non-finite"]),
    "int_weight": (None, _tensor("G.mapping.fc0.weight", lambda x: x.to(torch.int32)), ["G.mapping.fc0.weight",
                                                                                      "int32"]),
    "wrong_shape": (None, _tensor("G.mapping.fc1.weight", lambda x: x[:, :3].contiguous()),
                    ["G.mapping.fc1.weight", "shape"]),
    "missing_tensor": (None, lambda t: t.pop("G.mapping.fc1.bias"), ["missing", "G.mapping.fc1.bias"]),
    "nan_in_training_state": (None, lambda t: t.__setitem__("D.head.weight", torch.full([3], float("nan"))),
                              ["D.head.weight", "non-finite"]),
}


def _safetensors_header_bomb(path: Path, base: Path) -> None:
    """A valid config with a tensor table whose header claims a 2^39-element tensor in a tiny file."""
    cfg, _ = read_sgxl(base)
    header = json.dumps({"G.mapping.w_avg": {"dtype": "F32", "shape": [2**39], "data_offsets": [0, 2**41]}}).encode()
    blob = len(header).to_bytes(8, "little") + header + b"\0" * 64
    write_sgxl(path, cfg, blob=blob)


def _zip_bomb(path: Path, base: Path) -> None:
    """model.safetensors: 96 MB of zeros deflated to ~100 KB."""
    with zipfile.ZipFile(base) as zf:
        config = zf.read("config.json")
    deflated_zeros_member(path, "model.safetensors", 96 * 2**20, others={"config.json": config})


def _config_bomb(path: Path, base: Path) -> None:
    """config.json: 20 MB of spaces around an object, deflated."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", b" " * (20 * 2**20) + b"{}")
        zf.writestr("model.safetensors", b"")


def _directory_claims_4gb(path: Path, base: Path) -> None:
    path.write_bytes(base.read_bytes())
    patch_zip_size(path, "model.safetensors", 0xFFFFFFF0)


def _directory_lies_small(path: Path, base: Path) -> None:
    """The directory says 1 KB, the deflated data holds 40 MB: the read stops at the claim, the CRC fails."""
    with zipfile.ZipFile(base) as zf:
        config = zf.read("config.json")
    deflated_zeros_member(path, "model.safetensors", 40 * 2**20, others={"config.json": config})
    patch_zip_size(path, "model.safetensors", 1024)


def _sparse_folder(path: Path, base: Path) -> None:
    """A folder checkpoint whose model.safetensors is a 50 GB sparse file (nothing on disk)."""
    path.mkdir()
    with zipfile.ZipFile(base) as zf:
        (path / "config.json").write_bytes(zf.read("config.json"))
    with open(path / "model.safetensors", "wb") as f:
        f.truncate(50 * 2**30)


FILE_CASES = {
    "safetensors_header_bomb": (_safetensors_header_bomb, ["G.mapping.w_avg"]),
    "zip_bomb": (_zip_bomb, ["zip bomb"]),
    "config_bomb": (_config_bomb, ["config.json", "would inflate"]),
    "directory_claims_4gb": (_directory_claims_4gb, ["model.safetensors", "would inflate"]),
    "directory_lies_small": (_directory_lies_small, ["corrupt"]),
    "sparse_folder": (_sparse_folder, ["model.safetensors", "refusing to read"]),
    "truncated_zip": (lambda p, b: p.write_bytes(b.read_bytes()[: len(b.read_bytes()) // 2]), ["not a .sgxl"]),
}


def _dataset_cases(root: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (argv, expected words). Datasets: 6 good 16² images + one bad thing each."""
    good = {f"00000/img{i:08d}.png": png_bytes(16, i) for i in range(6)}
    labels = [[name, i % 2] for i, name in enumerate(good)]
    cases: dict[str, tuple[Path, list[str]]] = {}

    bomb = root / "png_bomb.zip"
    dataset_zip(bomb, {**good, "00000/img00000006.png": png_bomb(100_000, 100_000)},
                labels + [["00000/img00000006.png", 0]])
    cases["dataset_png_bomb"] = (bomb, ["img00000006.png", "too large to decode safely"])
    big = root / "png_9000.zip"
    dataset_zip(big, {**good, "00000/img00000006.png": png_bomb(9000, 9000)}, labels + [["00000/img00000006.png", 0]])
    cases["dataset_png_9000"] = (big, ["img00000006.png", "9000x9000", "too large to decode safely"])
    member = root / "member_bomb.zip"
    dataset_zip(member, {**good, "00000/img00000006.png": png_bytes(16, 6)}, labels + [["00000/img00000006.png", 0]])
    patch_zip_size(member, "00000/img00000006.png", 0xFFFFFFF0)
    cases["dataset_member_claims_4gb"] = (member, ["img00000006.png", "too large to read safely"])
    absurd = root / "absurd_label.zip"
    dataset_zip(absurd, good, labels[:-1] + [[labels[-1][0], 10**9]])
    cases["dataset_label_1e9"] = (absurd, ["1000000000", "out of range"])
    float_label = root / "float_label.zip"
    dataset_zip(float_label, good, labels[:-1] + [[labels[-1][0], 1e9]])
    cases["dataset_float_label"] = (float_label, ["1000000000.0", "integer"])

    out: dict[str, tuple[list[str], list[str]]] = {}
    for name, (path, words) in cases.items():
        out[name + "_metrics"] = (["metrics", "--preset", "tiny", "--res", "16", "--data", str(path), "--num", "2",
                                   "--device", "cpu", "--out", str(root / f"{name}.json")], words)
        out[name + "_train"] = (["train", "--data", str(path), "--out", str(root / f"run_{name}"), "--no-progress",
                                 "--device", "cpu"], words)
    return out


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid tiny 16² checkpoint with 5 named classes and a small training-state group."""
    path = tmp_path_factory.mktemp("base") / "base.sgxl"
    return save_checkpoint(path, make_tiny_generator(16), {"kimg": 1.0}, class_names=list("abcde"),
                           extra_tensors={"D": {"head.weight": torch.ones(3)}})


@pytest.fixture(scope="module")
def cases(base_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """name -> {"argv", "words", "outputs"}: every hostile file and the command that opens it."""
    root = tmp_path_factory.mktemp("hostile")
    out: dict[str, dict] = {}
    for name, (edit_config, edit_tensors, words) in CONFIG_CASES.items():
        path = rewrite_sgxl(base_ckpt, root / f"{name}.sgxl", edit_config, edit_tensors)
        grid = root / f"{name}_out" / "grid.png"
        out[name] = {"argv": ["generate", "--ckpt", str(path), "--seeds", "0", "--out", str(grid), "--device", "cpu"],
                     "words": words, "outputs": [grid.parent]}
    for name, (build, words) in FILE_CASES.items():
        path = root / (f"{name}.sgxl" if name != "sparse_folder" else name)
        build(path, base_ckpt)
        conv = root / f"{name}_converted.sgxl"
        argv = ["convert", str(path), "--out", str(conv)]
        if path.is_dir():  # convert takes files; generate opens folders too
            conv = root / f"{name}_grid.png"
            argv = ["generate", "--ckpt", str(path), "--seeds", "0", "--out", str(conv)]
        out[name] = {"argv": argv, "words": words, "outputs": [conv]}
    for name, (argv, words) in _dataset_cases(root).items():
        written = Path(argv[argv.index("--out") + 1])
        out[name] = {"argv": argv, "words": words, "outputs": [written]}
    # `info` reads the same files through the same gate.
    out["info_nan_weight"] = {"argv": ["info", str(root / "nan_weight.sgxl")], "words": ["non-finite"], "outputs": []}
    out["info_huge_channels"] = {"argv": ["info", str(root / "huge_channels.sgxl")], "words": ["--allow-large"],
                                 "outputs": []}
    return out


@pytest.fixture(scope="module")
def results(cases: dict[str, dict], base_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    spec = tmp_path_factory.mktemp("runner") / "cases.json"
    spec.write_text(json.dumps({name: c["argv"] for name, c in cases.items()}))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env.pop("SGXL_ALLOW_LARGE", None)
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(spec), str(base_ckpt)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS ")), None)
    assert proc.returncode == 0 and line is not None, proc.stderr[-4000:]
    return json.loads(line[len("RESULTS "):])


DATASET_NAMES = [f"dataset_{n}_{verb}" for n in ("png_bomb", "png_9000", "member_claims_4gb", "label_1e9",
                                                  "float_label") for verb in ("metrics", "train")]


@pytest.mark.parametrize("name", [*CONFIG_CASES, *FILE_CASES, *DATASET_NAMES, "info_nan_weight",
                                  "info_huge_channels"])
def test_hostile_file_is_one_clear_error(name: str, cases: dict, results: dict) -> None:
    r, case = results[name], cases[name]
    lines = [ln for ln in r["stderr"].splitlines() if ln.strip()]
    assert r["rc"] == 2, r["stderr"][-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), r["stderr"][-3000:]
    assert "Traceback" not in r["stderr"]
    for word in case["words"]:
        assert word in lines[0], (word, lines[0])
    assert r["cpu_seconds"] < MAX_CPU_SECONDS, r
    assert r["rss_growth_mb"] < MAX_RSS_GROWTH_MB, r
    for path in case["outputs"]:
        assert not Path(path).exists(), f"{path} was written on refusal"


def test_cli_entry_point_exit_code(cases: dict) -> None:
    """The same refusal through `python -m core.cli` (not only `main()`): exit code 2, one line."""
    proc = subprocess.run([sys.executable, "-m", "core.cli", *cases["nan_weight"]["argv"]], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "non-finite" in lines[0]


# ----------------------------------------------------------------------------- the gate itself

def test_expected_shapes_and_size_match_the_built_generator() -> None:
    """The size check and the shape table are computed from the config alone: they must equal the real thing."""
    for name, res, c_dim in (("tiny", 16, 5), ("tiny", 64, 0), ("demo", 32, 10), ("small", 32, 3)):
        cfg = preset_config(name, res, c_dim=c_dim)
        state = Generator(cfg).state_dict()
        assert expected_state_shapes(cfg) == {k: tuple(v.shape) for k, v in state.items()}
        assert model_size(cfg).params == sum(v.numel() for v in state.values())


def test_every_config_field_has_a_rule() -> None:
    """A field added to the config dataclasses must get a type/range rule here, or files with it are refused."""
    from dataclasses import fields

    from core.io import validate
    from core.networks.mapping import MappingConfig
    from core.networks.synthesis import GrowthStage, SynthesisConfig

    assert {f.name for f in fields(MappingConfig)} == set(validate._MAPPING_FIELDS)
    assert {f.name for f in fields(SynthesisConfig)} == set(validate._SYNTHESIS_FIELDS) | {"stages"}
    assert {f.name for f in fields(GrowthStage)} == set(validate._STAGE_FIELDS)


def test_the_papers_largest_model_passes_the_default_limits() -> None:
    cfg = preset_config("imagenet", 1024)
    size = check_model_size(cfg, allow_large=False)
    assert size.num_layers == 41 and size.resolution == 1024
    assert size.params < LIMITS.max_params / 4 and size.activation_bytes < LIMITS.max_activation_bytes / 2
    assert generator_config_from_dict(cfg.to_dict()) == cfg  # its own JSON round-trips through the gate


def test_allow_large_lifts_only_the_size_limit(base_ckpt: Path, tmp_path: Path, monkeypatch) -> None:
    path = rewrite_sgxl(base_ckpt, tmp_path / "big.sgxl", CONFIG_CASES["huge_channels"][0])
    cfg = generator_config_from_dict(read_sgxl(path)[0]["generator"])
    with pytest.raises(CheckpointError, match="--allow-large"):
        check_model_size(cfg)
    monkeypatch.setenv("SGXL_ALLOW_LARGE", "1")
    assert check_model_size(cfg).params > LIMITS.max_params  # allowed now; the numbers are still computed
    with pytest.raises(CheckpointError, match="num_layers"):  # field ranges still hold
        generator_config_from_dict({**read_sgxl(path)[0]["generator"],
                                    "synthesis": {**cfg.synthesis.to_dict(), "num_layers": 10**6}})
    # Through the CLI flag: the size check passes, and the file's tensors (the small model's) then do not fit.
    from core.cli import main

    monkeypatch.delenv("SGXL_ALLOW_LARGE")
    assert main(["info", str(path), "--allow-large"]) == 2
    assert os.environ.get("SGXL_ALLOW_LARGE") == "1"


def test_valid_checkpoints_still_load(base_ckpt: Path, tmp_path: Path) -> None:
    ckpt = load_checkpoint(base_ckpt)
    assert ckpt.class_names == list("abcde") and ckpt.kimg == 1.0
    assert torch.equal(ckpt.extra_tensors["D"]["head.weight"], torch.ones(3))
    demo = REPO / "assets" / "demo.sgxl"
    if demo.exists():
        assert load_checkpoint(demo).generator.img_resolution > 0


# ----------------------------------------------------------------------------- official importer's gate

@pytest.mark.skipif(not (OFFICIAL_FIXTURES / "sgxl_tiny16_c10.pkl").exists(), reason="official fixtures absent")
def test_official_import_passes_the_gate(monkeypatch) -> None:
    """The importer calls validate_generator before building: a huge architecture derived from a pickle is
    refused before any generator is allocated, and `sgxl info` no longer calls it convertible."""
    from core.io import official
    from core.io.official import stylegan_xl

    pkl = OFFICIAL_FIXTURES / "sgxl_tiny16_c10.pkl"
    og = official.read_official_generator(pkl)
    assert official.generator_from_official(og).img_resolution == 16
    huge = official.official_to_config(og)  # what a plausible-looking but huge official file would derive
    huge.synthesis.channel_base, huge.synthesis.channel_max = 2**24, 16384

    def no_build(*a, **k):
        raise AssertionError("a generator was built before the size check")

    monkeypatch.setattr(stylegan_xl, "official_to_config", lambda og_: huge)
    monkeypatch.setattr(stylegan_xl, "build_generator", no_build)
    with pytest.raises(CheckpointError, match="--allow-large"):
        official.generator_from_official(og)
    text = official.describe_official(pkl)
    assert "conversion       not supported" in text and "--allow-large" in text
