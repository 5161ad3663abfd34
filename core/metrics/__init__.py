"""Generative metrics, each named by the feature space it is computed in (docs/PAPER.md "Pretrained networks").

frechet.py (FD / FID), kid.py (KID), precision_recall.py (improved P/R, k = 3), inception_score.py (IS),
features.py (EfficientNet-lite0 default, Inception-v3 from a user file), stats.py (cached dataset statistics),
class_acc.py (generated images recognised as their class by a probe fitted on the real data),
api.py (`compute_metrics`, used by `sgxl metrics` and the trainer).
"""
