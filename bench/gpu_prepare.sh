#!/usr/bin/env bash
# Prepare, on a machine with network access, what bench/gpu_run.sh needs on the offline GPU machine.
#
#   bash bench/gpu_prepare.sh            # from the repository root; idempotent
#
# Writes three ignored folders (see .gitignore), about 35 MB together, well inside the 64 MiB that may travel:
#   .whl/           gsplat 1.5.3 prebuilt for sm_90 / torch 2.11 cu130 / cp312 (copied from ../shared/device/)
#                   plus dearpygui, glfw, PyOpenGL wheels for CPython 3.12 manylinux x86_64 (--no-deps: none
#                   of them has install requirements). Left out on purpose:
#                     imageio-ffmpeg (68 MB wheel: over the transfer limit; video export is not part of the check)
#                     pytest (already installed on the GPU machine, with its pluggy/iniconfig; a newer pytest
#                     from here could need a newer pluggy than the one there)
#   .gpu-fixtures/  the official-format fixture (checkpoint.pkl + golden.npz, 19 MB) for the CUDA golden test
#   .gl/            (optional, only when apt-get works here) libEGL/libGL/glvnd .debs, as the device README says
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${GGHEAD_SHARED_DIR:-../shared}"
mkdir -p .whl .gpu-fixtures
cp -f "$SHARED"/device/gsplat-1.5.3-cp312-cp312-linux_x86_64.whl .whl/
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl dearpygui glfw PyOpenGL
if [ -d "$SHARED/fixtures/gghead_official_small" ]; then
    rm -rf .gpu-fixtures/gghead_official_small
    cp -r "$SHARED/fixtures/gghead_official_small" .gpu-fixtures/
    chmod -R u+w .gpu-fixtures
fi
if [ "${GGHEAD_PREPARE_GL:-0}" = "1" ]; then  # NVIDIA EGL needs libglvnd's loaders on the bare machine
    mkdir -p .gl /tmp/amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    apt-get $o update -qq && (cd .gl && apt-get $o download libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh .whl .gpu-fixtures $( [ -d .gl ] && echo .gl ) 2>/dev/null
