"""Synthetic multi-view datasets at scale (``python main.py sample``), sharded with torch.distributed.

* :mod:`.cameras` -- seeded camera distributions (front | orbit | random) and EG3D / nerfstudio conventions;
* :mod:`.writer` -- the folder layout, per-head atomic commits, the manifest, the final merge and zip;
* :mod:`.sharding` -- process group from torchrun's environment, the global batches dealt to ranks;
* :mod:`.run` -- :class:`SampleSpec` (what a dataset is) and :func:`run_sample` (the loop).
"""

from gghead_core.dataset.cameras import (
    CAMERA_KINDS,
    CameraDistribution,
    camera_label,
    label_camera,
    opengl_cam2world,
    parse_range,
)
from gghead_core.dataset.run import DEPTH_FORMATS, SampleSpec, SampleSummary, run_sample
from gghead_core.dataset.writer import DatasetError, head_rel

__all__ = [
    "CAMERA_KINDS",
    "DEPTH_FORMATS",
    "CameraDistribution",
    "DatasetError",
    "SampleSpec",
    "SampleSummary",
    "camera_label",
    "head_rel",
    "label_camera",
    "opengl_cam2world",
    "parse_range",
    "run_sample",
]
