"""The wheel is self-contained: installed outside the checkout, `trufor-lab analyze` runs with
the shipped weights (Noiseprint++ and the demo model travel as package data)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installed_outside_the_checkout_analyzes_with_the_shipped_weights(tmp_path, shared_dir):
    wheels, target, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    work.mkdir()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO), "-w", str(wheels)],
        check=True,
        cwd=work,
        timeout=300,
    )
    (wheel,) = wheels.glob("trufor_lab-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        cwd=work,
        timeout=300,
    )
    assert (target / "trufor_lab" / "weights_data" / "noiseprint++.th").is_file()
    assert (target / "trufor_lab" / "weights_data" / "LICENSE-GRIP-UNINA.txt").is_file()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUFOR_WEIGHTS", "TRUFOR_NOISEPRINT"))}
    env.update(PYTHONPATH=str(target), TRUFOR_LAB_WEIGHTS_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)

    where = run("-c", "import trufor_lab; print(trufor_lab.__file__)")
    assert where.stdout.strip() == str(target / "trufor_lab" / "__init__.py"), where.stderr
    info = run("-m", "trufor_lab.cli", "weights", "info")
    assert info.returncode == 0, info.stderr
    shipped = target / "trufor_lab" / "weights_data"
    assert f"{shipped}: noiseprint++.th, trufor_demo.pt" in info.stdout and str(tmp_path / "cache") in info.stdout
    p = run("-m", "trufor_lab.cli", "analyze", str(shared_dir / "images" / "tampered2.png"), "-o", "out", "-q")
    assert p.returncode == 0, p.stderr
    assert "Demo weights" in p.stderr  # the shipped demo model, not an untrained one
    d = np.load(work / "out" / "tampered2.png.npz")
    assert d["map"].shape == (256, 256) and 0 <= float(d["score"]) <= 1
