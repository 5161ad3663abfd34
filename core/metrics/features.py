"""Feature extractors for the metrics: every metric is named after the feature space it was computed in.

* `effnet` (default, offline): EfficientNet-lite0 (ImageNet) global-average-pooled 1280-d features of the whole
  image resized to 224² (`ImageNetClassifier.pooled_features`), and its 1000-way ImageNet softmax for an IS in
  that space. Metrics computed here are `fd_effnet`, `kid_effnet`, ... and are NOT comparable to published
  FID / KID / IS numbers: they live in another feature space.
* `inception`: the standard FID network, only from a file the user provides (flag or $SGXL_INCEPTION_WEIGHTS);
  nothing is downloaded. It must be the TorchScript `inception-2015-12-05.pt` (NVIDIA's direct translation of
  TensorFlow's `pt_inception-2015-12-05` graph, used by StyleGAN2-ADA / StyleGAN3 / StyleGAN-XL and clean-fid).

Reference preprocessing of the Inception file (facts read from the translated graph and the official metric
code): its `forward(img, return_features=False, use_fp16=False, no_output_bias=False)` takes images NCHW in the
uint8 range 0..255 at any size, resizes them itself to 299x299 bilinearly (TF1 `resize_bilinear` sampling:
source = target · in/299, border clamped; done with affine_grid + grid_sample) and scales them to [-1, 1] by
(x - 127.5) / 127.5. `return_features=True` gives the 2048-d pool3 features (FID, KID); otherwise a softmax over
1008 classes, with `no_output_bias=True` for the IS as in the original IS code. We therefore hand it uint8
images at their native resolution, 1-channel images repeated to 3, and never resize them ourselves: a
PyTorch-style (half-pixel) bilinear resize before it would shift every sample by half a pixel.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import torch

from core.errors import UserInputError

INCEPTION_ENV = "SGXL_INCEPTION_WEIGHTS"
INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_DIM = 2048
INCEPTION_CLASSES = 1008

MISSING_INCEPTION = (
    f"FID / IS in the standard Inception-v3 feature space need the TorchScript file {INCEPTION_FILE} "
    "(NVIDIA's translation of TensorFlow's pt_inception-2015-12-05, as used by StyleGAN2-ADA, StyleGAN3, "
    f"StyleGAN-XL and clean-fid): pass --inception-weights FILE or set ${INCEPTION_ENV}; nothing is downloaded. "
    "Offline alternative: use fd_effnet (and kid, pr, is_effnet), computed in EfficientNet-lite0 features "
    "and not comparable to published FID numbers.")


def check_uint8_images(images: torch.Tensor) -> torch.Tensor:
    """Validate uint8 [B, C, H, W] images (C = 1 or 3) -> uint8 [B, 3, H, W]."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"feature extractors take uint8 [B, 3, H, W] images, got {images.dtype} "
                         f"{tuple(images.shape)}")
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images


class FeatureExtractor(ABC):
    """uint8 images -> feature vectors (and, for IS, class probabilities) in one named space."""

    name: str  # short id used in metric names: "effnet", "inception"
    description: str  # the feature space in words, written next to every number
    probs_description: str  # the same for its class probabilities (IS)
    dim: int
    num_classes: int  # width of `probs` (0 when this network cannot classify)

    @abstractmethod
    def extract(self, images: torch.Tensor, want_probs: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """uint8 [B, 3, H, W] -> (float32 features [B, dim] on CPU, probs [B, num_classes] or None)."""


class EffNetExtractor(FeatureExtractor):
    """EfficientNet-lite0 pooled features (the offline default; `fd_effnet`)."""

    name = "effnet"
    description = "EfficientNet-lite0 ImageNet pooled 1280-d at 224x224 (not Inception-v3; not comparable to FID)"
    probs_description = "EfficientNet-lite0 ImageNet 1000-class softmax at 224x224 (not Inception-v3)"
    dim = 1280
    num_classes = 1000

    def __init__(self, device: str | torch.device = "cpu", classifier: torch.nn.Module | None = None):
        from core.networks.feature_nets import ImageNetClassifier

        self.device = torch.device(device)
        self.classifier = classifier if classifier is not None else ImageNetClassifier(device=self.device)
        # NHWC convolutions: measured 1.6x faster on CPU for this depthwise-heavy net, same numbers to ~1e-6.
        self.classifier.net.to(memory_format=torch.channels_last)

    @torch.no_grad()
    def extract(self, images: torch.Tensor, want_probs: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = check_uint8_images(images).to(self.device)
        pooled = self.classifier.pooled_features(x)  # [B, 1280]; uint8 input is read as 0..255
        probs = None
        if want_probs:  # timm's head is pool -> (dropout, off in eval) -> classifier: reuse the pooled features
            probs = self.classifier.net.classifier(pooled).softmax(dim=1).float().cpu()
        return pooled.float().cpu(), probs


class InceptionExtractor(FeatureExtractor):
    """The standard FID Inception-v3 from the user's TorchScript file (`fid`, `is`)."""

    name = "inception"
    description = "Inception-v3 pool3 2048-d (inception-2015-12-05, the standard FID network) at 299x299"
    probs_description = "Inception-v3 1008-class softmax without output bias (inception-2015-12-05) at 299x299"
    dim = INCEPTION_DIM
    num_classes = INCEPTION_CLASSES

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        self.path = Path(path)
        self.device = torch.device(device)
        try:
            # TorchScript, not pickle: loading it runs no Python code from the file.
            self.net = torch.jit.load(str(self.path), map_location=self.device).eval()
        except Exception as e:
            raise UserInputError(f"{self.path} is not a TorchScript Inception network ({type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else ''}); expected {INCEPTION_FILE}. "
                                 + MISSING_INCEPTION) from None
        self._check()

    def _check(self) -> None:
        """One tiny forward pass: the file must have the reference signature and output sizes."""
        probe = torch.zeros(1, 3, 32, 32, dtype=torch.uint8, device=self.device)
        try:
            with torch.no_grad():
                feats = self.net(probe, return_features=True)
                probs = self.net(probe, no_output_bias=True)
        except Exception as e:
            raise UserInputError(f"{self.path} does not behave like {INCEPTION_FILE} (calling it with "
                                 f"return_features / no_output_bias failed: {type(e).__name__})") from None
        if tuple(feats.shape) != (1, INCEPTION_DIM) or tuple(probs.shape) != (1, INCEPTION_CLASSES):
            raise UserInputError(f"{self.path} returns features {tuple(feats.shape)} and probabilities "
                                 f"{tuple(probs.shape)}; {INCEPTION_FILE} gives (1, {INCEPTION_DIM}) and "
                                 f"(1, {INCEPTION_CLASSES})")

    @torch.no_grad()
    def extract(self, images: torch.Tensor, want_probs: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = check_uint8_images(images).to(self.device)  # native size, uint8: the network resizes and scales
        feats = self.net(x, return_features=True).float().cpu()
        probs = self.net(x, no_output_bias=True).float().cpu() if want_probs else None
        return feats, probs


def resolve_inception_weights(path: str | Path | None = None) -> Path:
    """The Inception file from the argument, else $SGXL_INCEPTION_WEIGHTS; a clear error naming the fallback."""
    given = path if path is not None else os.environ.get(INCEPTION_ENV) or None
    if given is None:
        raise UserInputError(MISSING_INCEPTION)
    resolved = Path(given).expanduser()
    if not resolved.is_file():
        raise UserInputError(f"Inception weights file {resolved} does not exist. " + MISSING_INCEPTION)
    return resolved


def load_extractor(name: str, device: str | torch.device = "cpu",
                   inception_weights: str | Path | None = None) -> FeatureExtractor:
    """A feature extractor by name: "effnet" or "inception" (the latter only from a user-provided file)."""
    if name == "effnet":
        return EffNetExtractor(device)
    if name == "inception":
        return InceptionExtractor(resolve_inception_weights(inception_weights), device)
    raise UserInputError(f"unknown feature network {name!r}; use effnet or inception")
