"""The ImageNet class-embedding table that initialises class conditioning (paper Sec. 4.1).

Officially both the mapping network's class embedding and each discriminator head's projection
embedding start from one pretrained table, `Embedding(1000, 320)` (320 = EfficientNet-lite0's
last-stage channels), shipped by the official code as `in_embeddings/tf_efficientnet_lite0.pkl`
(a pickle of `{'embed': nn.Embedding}`); a dataset with `c_dim` classes uses rows 0..c_dim-1.
We cannot ship that file, so the table comes from, in this order:

1. `official`: the user's copy of that file, given explicitly (`--class-embeddings`), by the env var
   SGXL_CLASS_EMBEDDINGS, or found at ~/.cache/sgxl/in_embeddings/tf_efficientnet_lite0.pkl. It is read
   with the restricted unpickler of `core.io.official` (nothing in it runs).
2. `lite0-classifier`: derived offline from the EfficientNet-lite0 weights we do have: row c is the
   classifier's weight vector for class c pulled back through the 1x1 `conv_head` (1280 -> 320), i.e. the
   direction of 320-d last-stage features that raises class c's logit, scaled so its entries have the
   official table's RMS (1.078). Measured against the official table: row-wise cosine 0.72, and the
   pairwise-cosine structure of the 1000 classes correlates 0.75 with the official one.
3. `random`: none of these (c_dim > 1000, another embedding width), or asked for (`--class-embeddings
   random`, the official `rand_embedding` option: N(0, 1) rows): the modules' own random init.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from core.errors import SGXLError

CLASS_EMBEDDINGS_ENV = "SGXL_CLASS_EMBEDDINGS"
RANDOM = "random"  # --class-embeddings random: no table, the modules' own random init
DEFAULT_LOCATION = Path("~/.cache/sgxl/in_embeddings/tf_efficientnet_lite0.pkl")
TABLE_SHAPE = (1000, 320)
# RMS of the official table's entries (measured on in_embeddings/tf_efficientnet_lite0.pkl): the derived
# table is scaled to it, so the equalized-lr projections that read it see inputs of the official size.
OFFICIAL_TABLE_RMS = 1.078


@dataclass
class ClassEmbeddingTable:
    weight: torch.Tensor  # [1000, 320]
    source: str  # "official" | "lite0-classifier"
    path: str = ""  # the file it came from

    def rows(self, c_dim: int, embed_dim: int) -> torch.Tensor | None:
        """Rows 0..c_dim-1 (the official choice for non-ImageNet datasets), or None when they do not fit."""
        if c_dim <= 0 or c_dim > self.weight.shape[0] or embed_dim != self.weight.shape[1]:
            return None
        return self.weight[:c_dim].clone()

    def describe(self) -> str:
        if self.source == "official":
            return f"the official ImageNet class-embedding table ({self.path})"
        return "a table derived from EfficientNet-lite0's classifier (the official table was not found)"


def read_official_table(path: str | Path) -> torch.Tensor:
    """The [1000, 320] weight of the official `{'embed': nn.Embedding}` pickle, read without running anything."""
    from core.io.official import InertObject, read_official_pickle

    path = Path(path).expanduser()
    data = read_official_pickle(path)  # CheckpointError (an SGXLError) for missing / hostile / broken files
    embed = data.get("embed")
    state = embed.state if isinstance(embed, InertObject) else None
    params = state.get("_parameters") if isinstance(state, dict) else None
    weight = params.get("weight") if isinstance(params, dict) else None
    if not isinstance(weight, torch.Tensor) or tuple(weight.shape) != TABLE_SHAPE or not weight.is_floating_point():
        raise SGXLError(f"{path} is not the official class-embedding table (expected {{'embed': "
                        f"Embedding(1000, 320)}})")
    if not torch.isfinite(weight).all():
        raise SGXLError(f"{path} holds non-finite class embeddings")
    return weight.detach().float().clone()


def derived_lite0_table() -> torch.Tensor:
    """[1000, 320]: lite0's classifier rows pulled back through its conv_head, at the official table's RMS."""
    from core.networks.feature_nets import lite0_weights_path

    path = lite0_weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        head = state["_conv_head.weight"][:, :, 0, 0].float()  # [1280, 320]
        classifier = state["_fc.weight"].float()  # [1000, 1280]
    except Exception as e:  # a truncated or foreign file
        raise SGXLError(f"cannot read the EfficientNet-lite0 weights {path}: {e}") from None
    table = classifier @ head  # [1000, 320]
    return table * (OFFICIAL_TABLE_RMS / table.square().mean().sqrt())


def find_class_embeddings(path: str | Path | None = None) -> ClassEmbeddingTable | None:
    """The best table available (see the module doc); None when even the lite0 weights are missing, or when
    `path` (or the env var) is "random".

    An explicit path (argument or env var) that does not exist is an error, not a silent fallback.
    """
    explicit = path if path is not None else os.environ.get(CLASS_EMBEDDINGS_ENV) or None
    if explicit == RANDOM:
        return None
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise SGXLError(f"class-embedding table {p} does not exist (given by --class-embeddings or "
                            f"${CLASS_EMBEDDINGS_ENV})")
        return ClassEmbeddingTable(read_official_table(p), "official", str(p))
    default = DEFAULT_LOCATION.expanduser()
    if default.is_file():
        return ClassEmbeddingTable(read_official_table(default), "official", str(default))
    try:
        return ClassEmbeddingTable(derived_lite0_table(), "lite0-classifier")
    except SGXLError:
        return None
