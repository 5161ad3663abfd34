"""Official StyleGAN-XL snapshots as the official training loop writes them: with `dill`.

The fixtures (`../shared/fixtures/official/sgxl_dill_*`) were saved by the public official code with
dill 0.3.4 + numpy 1.26 (as the released checkpoints were), dill 0.3.4 + numpy 2 and dill 0.4.1 +
numpy 2; their `_expected_seeds.npz` hold the uint8 images of the official `gen_images.py` path (class 3,
psi 0.7, seeds 0-3). `sgxl info`, `convert` and `generate` must reproduce them from the files alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.cli import main
from core.io.checkpoint import load_checkpoint
from core.io.official import official_to_config, read_official_generator, read_official_pickle
from tests.helpers import OFFICIAL_FIXTURES

STEMS = ["sgxl_dill_np1_stem16_c10", "sgxl_dill_stem16_c10", "sgxl_dill041_stem16_c10"]
SUPERRES = "sgxl_dill_np1_superres32_c10"  # SuperresGenerator(head_layers=3, up_factor=2) as train.py makes it
TRAIN_PY_BETA = 0.5 ** (64 / 20000)  # official train.py: the stem's magnitude_ema_beta from batch 64


def fixture(name: str) -> Path:
    path = OFFICIAL_FIXTURES / f"{name}.pkl"
    if not path.exists():
        pytest.skip(f"official fixture {path} not found")
    return path


def _values(obj: object) -> list:
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in _values(x)]
    if isinstance(obj, (list, tuple)):
        return [v for x in obj for v in _values(x)]
    return [obj]


@pytest.mark.parametrize("name", STEMS)
def test_dill_snapshot_attributes_are_plain_values(name: str) -> None:
    og = read_official_generator(fixture(name))
    a = og.attributes
    # Values that came out of a call in the file (numpy scalars, arrays, dtypes) are recovered as values.
    assert a["synthesis.L0_36_128.in_cutoff"] == 2.0 and type(a["synthesis.L0_36_128.in_cutoff"]) is float
    assert a["synthesis.L0_36_128.in_size"] == [36, 36]
    assert a["synthesis.input.size"] == [36, 36]
    assert a["synthesis.L0_36_128.magnitude_ema_beta"] == pytest.approx(TRAIN_PY_BETA, abs=1e-12)
    assert a["mapping.fc0.weight_gain"] == pytest.approx(0.01 / np.sqrt(128))
    inert = [v for v in _values(a) + _values(og.init_kwargs) if isinstance(v, str) and v.startswith("<inert")]
    assert inert == []
    cfg = official_to_config(og)
    assert cfg.synthesis.magnitude_ema_beta == pytest.approx(TRAIN_PY_BETA, abs=1e-12)
    assert (cfg.mapping.c_dim, cfg.synthesis.stem_resolution, cfg.synthesis.num_layers) == (10, 16, 6)


@pytest.mark.parametrize("name", [*STEMS, SUPERRES])
def test_dill_snapshot_info_convert_generate_reproduce_gen_images(name: str, tmp_path: Path, capsys) -> None:
    pkl = fixture(name)
    expected = np.load(OFFICIAL_FIXTURES / f"{name}_expected_seeds.npz")["seeds0-3_class3_psi0.7"]
    assert main(["info", str(pkl)]) == 0
    info = capsys.readouterr().out
    assert "conversion       supported" in info and "classes          10" in info
    if name == SUPERRES:
        assert "magnitude EMA    stem 0.997784, stage 1 0.999" in info

    out = tmp_path / f"{name}.sgxl"
    assert main(["convert", str(pkl), "--out", str(out)]) == 0
    assert load_checkpoint(out).meta["official_class"] == ("SuperresGenerator" if name == SUPERRES else "Generator")
    for ckpt in (pkl, out):  # straight from the pickle, and from the converted file
        folder = tmp_path / f"images_{ckpt.suffix[1:]}"
        assert main(["generate", "--ckpt", str(ckpt), "--seeds", "0-3", "--class", "3", "--trunc", "0.7",
                     "--out", str(folder)]) == 0
        images = np.stack([np.asarray(Image.open(folder / f"seed{s:04d}.png")) for s in range(4)])
        res = 32 if name == SUPERRES else 16
        assert images.shape == expected.shape == (4, res, res, 3)
        diff = np.abs(images.astype(np.int16) - expected.astype(np.int16))
        assert diff.max() <= 1, f"{ckpt.name}: max uint8 difference {diff.max()}"


def test_dill_forms_of_numpy_values_are_what_the_fixtures_hold() -> None:
    """The three dill/numpy combinations really differ in the constructs this reader evaluates."""
    def raw(name: str) -> bytes:
        return fixture(name).read_bytes()[:2_000_000]  # the generator's attributes come first

    np1, np2, dill041 = raw(STEMS[0]), raw(STEMS[1]), raw(STEMS[2])
    assert b"_get_attr" in np1 and b"numpy.core._multiarray_umath" in np1 and b"_create_array" not in np1
    assert b"_get_attr" in np2 and b"numpy._core._multiarray_umath" in np2
    assert b"_create_array" in dill041 and b"_get_attr" not in dill041
    data = read_official_pickle(fixture(STEMS[2]))
    assert data["training_set_kwargs"]["resolution"] == 16


def test_train_py_superres_betas_round_trip_through_convert(tmp_path: Path) -> None:
    """train.py: stem beta from the batch size, new head layers 0.999; both survive convert -> save -> load."""
    pkl = fixture(SUPERRES)
    og = read_official_generator(pkl)
    official = {name: og.attributes[f"synthesis.{name}.magnitude_ema_beta"]
                for name in og.attributes["synthesis.layer_names"]}
    assert set(official.values()) == {TRAIN_PY_BETA, 0.999}
    assert {official[n] for n in og.attributes["head_layer_names"]} == {0.999}
    cfg = official_to_config(og)
    assert cfg.synthesis.magnitude_ema_beta == TRAIN_PY_BETA
    assert [s.magnitude_ema_beta for s in cfg.synthesis.stages] == [0.999]

    out = tmp_path / "superres.sgxl"
    assert main(["convert", str(pkl), "--out", str(out)]) == 0
    again = tmp_path / "again.sgxl"
    assert main(["convert", str(out), "--out", str(again)]) == 0  # .sgxl -> .sgxl export
    for path in (out, again):
        ckpt = load_checkpoint(path)
        assert ckpt.config == cfg
        ours = {layer.spec.name: layer.magnitude_ema_beta for layer in ckpt.generator.synthesis.layers()}
        assert ours == official  # exactly: JSON keeps every digit of a float
