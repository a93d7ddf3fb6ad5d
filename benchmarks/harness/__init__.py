"""The measurement code of the benchmark and analysis scripts.

Not part of the installed package: the scripts of ``benchmarks/`` import it
as ``harness`` (their own folder is first on ``sys.path`` when run as
``python benchmarks/X.py``); ``tools/analysis/compare_models.py`` and the
tests put ``benchmarks/`` on ``sys.path`` first. It imports the plugin
normally (``mmseg_refinenet`` installed, or the repository root on the
path).

* :mod:`harness.cli`: one-line argument errors of the scripts (standard
  library only).
* :mod:`harness.provenance`: the commit a result came from (standard
  library only).
* :mod:`harness.segmentors`: a config's model, built through
  :func:`mmseg_refinenet.apis.build_segmentor`.
* :mod:`harness.measure`: latency, throughput, training step time and
  peak memory.
* :mod:`harness.memory`: training memory estimated on fake tensors, and
  the bytes a call keeps for the backward pass.
* :mod:`harness.roofline`: FLOPs, memory traffic and GPU peaks.
* :mod:`harness.compile_check`: ``torch.compile`` graph breaks and
  gradients.
* :mod:`harness.machine`: what a result depends on (device, versions,
  commit).

This package is kept light: importing it imports nothing; torch and MMSeg
come with the modules that need them.
"""
