"""The package as a user installs it: a wheel that holds the default model and runs outside the checkout."""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "text4seg" / "app" / "assets" / "default"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
        ],
        check=True,
        cwd=out,
    )
    (path,) = out.glob("text4seg_stsam-*.whl")
    return path


def test_wheel_holds_every_file_the_default_model_needs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = {str(p.relative_to(REPO)) for p in ASSETS.rglob("*") if p.is_file()}
    assert needed and needed <= names, sorted(needed - names)
    modules = {str(p.relative_to(REPO)) for root in ("text4seg", "stsam_refiner", "data_builders")
               for p in (REPO / root).rglob("*.py")}  # fmt: skip
    assert modules <= names, sorted(modules - names)[:5]


@pytest.mark.slow
def test_installed_wheel_segments_the_example_from_outside_the_checkout(wheel, tmp_path):
    # A fresh environment: the locked dependencies (this venv's site-packages, added by a .pth file,
    # whose own .pth files, such as the editable install of this repository, are not processed)
    # plus the wheel installed with --no-deps.
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "locked_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    image = tmp_path / "coffee_signs.png"
    image.write_bytes((REPO / "examples" / "coffee_signs.png").read_bytes())
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    proc = subprocess.run(
        [env_dir / "bin" / "text4seg", "segment", str(image), "--out", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "segmented 1/1 images, 0 failed" in proc.stdout
    assert (tmp_path / "out" / "coffee_signs.mask.png").is_file()
    where = subprocess.run([python, "-c", "import text4seg; print(text4seg.__file__)"],
                           check=True, capture_output=True, text=True, cwd=tmp_path).stdout  # fmt: skip
    assert str(REPO) not in where and "site-packages" in where
