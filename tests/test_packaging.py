"""The wheel: built from the repository, installed into a fresh virtual environment outside it, the console
command works from another folder (shaders, template and demo checkpoint come from the package, not the
current directory)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(REPO_ROOT).parts)
        for top in ("app", "gghead_core")
        for p in (REPO_ROOT / top).rglob("__init__.py")
    }
    assert on_disk <= listed, f"packages missing from pyproject.toml: {sorted(on_disk - listed)}"


def test_version_has_one_source():
    import gghead_core
    from gghead_core import cli

    assert gghead_core.__version__
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "main.py"), "--version"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"{cli.PROG} {gghead_core.__version__}"


@pytest.mark.skipif(os.environ.get("GGHEAD_SKIP_WHEEL_TEST") == "1", reason="GGHEAD_SKIP_WHEEL_TEST=1")
def test_wheel_installs_and_runs_from_another_folder(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
         str(REPO_ROOT)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    if build.returncode != 0 and "No module named 'setuptools'" in build.stderr + build.stdout:
        pytest.skip("setuptools is not installed in this environment (pip install -e .[dev] brings it)")
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = dist.glob("gghead_viewer-*.whl")
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    # The dependencies (torch & co, 1 GB) come from this test's environment through a .pth file; the package
    # itself only from the wheel.
    purelib = Path(subprocess.run([str(env_dir / "bin" / "python"), "-c",
                                   "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    deps = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    (purelib / "deps.pth").write_text("\n".join(sorted(set(deps))) + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"),
                              "install", "--no-deps", "-q", str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    exe = env_dir / "bin" / "gghead-viewer"
    info = subprocess.run([str(exe), "info"], capture_output=True, text=True, timeout=300, cwd=work, env=env)
    assert info.returncode == 0, info.stderr
    assert "demo.safetensors" in info.stdout and str(REPO_ROOT) not in info.stdout
    out = work / "x.png"
    render = subprocess.run([str(exe), "render", "--seed", "0", "--resolution", "64", "--out", "x.png", "--quiet"],
                            capture_output=True, text=True, timeout=300, cwd=work, env=env)
    assert render.returncode == 0, render.stderr
    assert out.is_file() and out.stat().st_size > 0
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import gghead_core; print(gghead_core.__file__)"],
                           capture_output=True, text=True, cwd=work, env=env)
    assert str(env_dir) in where.stdout  # the installed package, not the repository
