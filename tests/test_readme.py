"""The README's first commands work on a fresh clone."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_first_command_analyzes_a_file_of_the_repository():
    """The first command analyzed ``../shared/images/tampered2.png``: ``../shared`` is not part of
    the repository, so on a fresh clone the first thing a reader ran failed."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Two commands.*?```bash\n(.*?)```", text, re.S).group(1)
    words = shlex.split(block.replace("&&", " "))
    target = ROOT / words[words.index("analyze") + 1]
    assert target.resolve().is_relative_to(ROOT) and target.is_file(), target
    assert "grip-unina/TruFor" in text, "the README says where the official samples come from"


def _name(requirement: str) -> str:
    """``'torch>=2.6,<3'`` -> ``'torch'``; ``'-e .'`` -> ``''``."""
    return re.match(r"[A-Za-z0-9_.-]*", requirement.strip()).group(0).lower().replace("_", "-")


def test_the_conda_environment_holds_every_dependency_and_the_pinned_torch_pair():
    """``conda env create -f environment.yml`` must give what ``.ci/setup`` gives: every runtime,
    test and notebook dependency of pyproject.toml (platformdirs was missing, so conda users got
    it from PyPI behind conda's back, or not at all with ``--no-deps``), and the same torch pair
    as ``.ci/setup`` and the README."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in ("test", "notebooks"):
        wanted |= {_name(r) for r in project["optional-dependencies"][extra]}
    env = (ROOT / "environment.yml").read_text(encoding="utf-8")
    listed = {_name(m) for m in re.findall(r"^\s*- (?!pip:)(.+?)\s*$", env, re.M)} - {"", "pip"}
    assert wanted - listed == set(), "pyproject.toml dependencies missing from environment.yml"
    pins = re.findall(r"torch==[\d.]+|torchvision==[\d.]+", env)
    setup = (ROOT / ".ci" / "setup").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(pins) == 2 and all(p in setup and p in readme for p in pins), pins


def test_the_readme_names_the_address_of_the_official_checkpoint():
    """Offline, the README told the reader to download ``TruFor_weights.zip`` "elsewhere" without
    saying from where: it names the address ``trufor-lab weights download`` uses."""
    from trufor_lab.inference.weights import TRUFOR_ZIP_URL

    assert f"<{TRUFOR_ZIP_URL}>" in (ROOT / "README.md").read_text(encoding="utf-8")
