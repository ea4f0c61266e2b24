#!/usr/bin/env bash
# The GPU run of issue 11, for the offline device machine (H200, Python 3.12, torch 2.11 cu130 preinstalled).
#
# Prepare once, here, with network (see docs/gpu.md):  bash bench/gpu_prepare.sh
#   (= copy ../shared/device/gsplat-1.5.3-cp312-cp312-linux_x86_64.whl into .whl/, then
#    pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 ...
#    -d .whl dearpygui glfw PyOpenGL; copy the official fixture into .gpu-fixtures/)
# Then run it there (the device tool), carrying the ignored folders:
#   run(command="bash bench/gpu_run.sh", carry=[".whl", ".gpu-fixtures", ".gl"], timeout_s=600)
# Results land in $OUT (report.md, report.json, junit.xml, gpu_check.log, nvidia-smi.txt); extra arguments go
# to bench/gpu_check.py. Nothing here installs over the machine's own torch: wheels go to /tmp/site with
# --no-deps, and only PyOpenGL/glfw also go into the interpreter's own environment, because the OpenGL probe
# runs a child `python -I`, which ignores PYTHONPATH (preflight #2).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-out/gpu}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_run: installing .whl/ into /tmp/site failed" | tee "$OUT/gpu_check.log"; exit 2; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    gl_wheels=$(ls .whl/pyopengl-*.whl .whl/PyOpenGL-*.whl .whl/glfw-*.whl 2>/dev/null || true)
    [ -n "$gl_wheels" ] && python3 -m pip install -q --no-index --no-deps --no-cache-dir $gl_wheels \
        || echo "gpu_run: PyOpenGL/glfw not installed into the interpreter (the OpenGL probe may miss them)"
else
    echo "gpu_run: no .whl/ folder: gsplat, PyOpenGL and glfw must already be installed"
fi
if ls .gl/*.deb >/dev/null 2>&1; then  # libglvnd loaders, as the device README prescribes
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
nvidia_egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
if [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && [ -f "$nvidia_egl" ]; then
    export __EGL_VENDOR_LIBRARY_FILENAMES=$nvidia_egl
fi
if [ -d .gpu-fixtures/gghead_official_small ]; then
    export GGHEAD_FIXTURE_DIR="$PWD/.gpu-fixtures/gghead_official_small"
fi
(nvidia-smi; python3 -c "import torch, sys; print(sys.version); print('torch', torch.__version__, torch.version.cuda)") \
    >"$OUT/nvidia-smi.txt" 2>&1
timeout 570 python3 bench/gpu_check.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
