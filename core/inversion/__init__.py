"""Photo inversion (docs/PAPER.md "Inversion"): projection into W / W+, pivotal tuning, and latent edits.

  photo.py       photo file -> target tensor (any mode -> RGB, square crop, resize; clear errors)
  perceptual.py  LPIPS-VGG16 / VGG16 feature / EfficientNet-lite0 feature distances, each named as what it is
  quality.py     PSNR and SSIM in torch
  projector.py   `Projector` (one optimisation step per call) and `project()`
  pti.py         `PivotalTuner` / `pivotal_tuning()`: tunes a copy of G; PTI checkpoints with the pivot
  edit.py        class swap, interpolation, style mixing, GANSpace directions (cached)
  pipeline.py    `run_invert()`: what `sgxl invert` does, files and metrics.json

A GUI drives the same objects step by step, e.g. from a worker thread:

    target = load_photo(path, G.img_resolution).target
    projector = Projector(G, target, class_idx, build_perceptual(), ProjectorConfig(preview_every=5))
    for report in projector:            # StepReport(phase, step, total, losses, image or None)
        post(report)                    # image: [1, 3, R, R] in [-1, 1] on the CPU, every `preview_every` steps
        if cancelled: break
    proj = projector.result(cancelled)  # ws [1, num_ws, w_dim] -> the current latent
    tuner = PivotalTuner(G, target, proj.ws, class_idx, perceptual, PTIConfig())
    ...                                 # same loop; tuner.result().generator is a tuned copy, G stays as it was

or blocking, with `project(..., callback=post, cancel=threading.Event())` and `pivotal_tuning(...)`.
"""
