"""Writing results to disk: atomic outputs, PNG, video, 3DGS PLY / .splat, and replayable recipe sidecars.

Rules every writer here follows (they protect user files):

* Nothing is written at the final path until the whole output is complete: data goes to a hidden temp file in
  the same folder (``.<first 32 chars of the stem>.<token>.partial.EXT``, short whatever the output's name)
  that is moved into place at the end (a hard link, so that a file appearing meanwhile is never clobbered, or
  a rename). A new frame folder is filled as a hidden sibling and renamed into place in one step.
* An existing file is never replaced unless ``overwrite=True``; when it is, the old files are kept aside until
  every new file is in place, and put back if anything fails: a commit is all-or-nothing.
* On any error, cancel, Ctrl-C, or SIGTERM/SIGHUP inside :func:`signals_as_interrupt`, the temp files are
  deleted and folders this module created are removed again. Signals that arrive while files are being moved
  into place or deleted are held until that step is done.
* Problems with the output location raise :class:`OutputError` (a ValueError) with a one-line message; a
  write that fails part-way (disk full, I/O error, ffmpeg failing) raises :class:`OutputWriteError` with one
  line such as ``disk full while writing out.mp4``.

Sidecars: every output ``X`` gets a recipe ``X.json`` next to it (for a folder of frames: ``X/recipe.json``).
"""


from __future__ import annotations

from gghead_core.export._frames import (  # noqa: F401
    FolderSink,
    FrameSink,
    frame_file_name,
    frame_names,
    open_frame_sink,
    pad_to_even,
    read_frames,
    save_png,
    to_uint8,
    write_png,
)
from gghead_core.export._gaussian_files import (  # noqa: F401
    SPLAT_DTYPE,
    gaussians_to_ply_arrays,
    gaussians_to_splat_array,
    ply_arrays_to_gaussians,
    read_ply,
    read_splat,
    write_ply,
    write_splat,
)
from gghead_core.export._outputs import (  # noqa: F401
    FOLDER_RECIPE_NAME,
    FRAME_PREFIX,
    GAUSSIAN_EXTENSIONS,
    IMAGE_EXTENSIONS,
    OPACITY_EPS,
    RECIPE_SUFFIX,
    VIDEO_EXTENSIONS,
    InterruptedAfterCommit,
    OutputError,
    OutputTransaction,
    OutputWriteError,
    RecipeError,
    _temp_name,
    check_extension,
    check_output_file,
    check_parent_writable,
    is_folder_target,
    sidecar_path,
    signals_as_interrupt,
    write_bytes,
    write_error,
)
from gghead_core.export._recipe import (  # noqa: F401
    MAX_RECIPE_BYTES,
    READABLE_RECIPE_VERSIONS,
    RECIPE_FORMAT,
    RECIPE_VERSION,
    Recipe,
    camera_from_dict,
    camera_to_dict,
    package_versions,
    read_recipe,
    write_recipe,
)

__all__ = [
    "FOLDER_RECIPE_NAME",
    "FRAME_PREFIX",
    "GAUSSIAN_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "InterruptedAfterCommit",
    "OPACITY_EPS",
    "OutputError",
    "OutputTransaction",
    "OutputWriteError",
    "RECIPE_SUFFIX",
    "RecipeError",
    "VIDEO_EXTENSIONS",
    "check_extension",
    "check_output_file",
    "check_parent_writable",
    "is_folder_target",
    "sidecar_path",
    "signals_as_interrupt",
    "write_bytes",
    "write_error",
    "FolderSink",
    "FrameSink",
    "frame_file_name",
    "frame_names",
    "open_frame_sink",
    "pad_to_even",
    "read_frames",
    "save_png",
    "to_uint8",
    "write_png",
    "SPLAT_DTYPE",
    "gaussians_to_ply_arrays",
    "gaussians_to_splat_array",
    "ply_arrays_to_gaussians",
    "read_ply",
    "read_splat",
    "write_ply",
    "write_splat",
    "MAX_RECIPE_BYTES",
    "READABLE_RECIPE_VERSIONS",
    "RECIPE_FORMAT",
    "RECIPE_VERSION",
    "Recipe",
    "camera_from_dict",
    "camera_to_dict",
    "package_versions",
    "read_recipe",
    "write_recipe",
]
