"""Shared fixtures. Reference data is read from ../shared (or $TRUFOR_LAB_SHARED), never copied."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


def _shared() -> Path:
    return Path(os.environ.get("TRUFOR_LAB_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    d = _shared()
    if not (d / "fixtures" / "trufor_parity").is_dir():
        pytest.fail(f"reference data not found at {d} (set TRUFOR_LAB_SHARED)")
    return d


@pytest.fixture(scope="session")
def parity_dir(shared_dir) -> Path:
    return shared_dir / "fixtures" / "trufor_parity"


@pytest.fixture(scope="session")
def recipe_state(parity_dir, shared_dir) -> dict[str, torch.Tensor]:
    """The deterministic 'recipe' checkpoint of ../shared/README.md."""
    from trufor_lab.model import extract_state_dict, read_checkpoint
    from trufor_lab.testing import manifest_shapes, recipe_state_dict
    shapes = manifest_shapes(parity_dir / "trufor_state_dict_manifest.json")
    np_sd = extract_state_dict(read_checkpoint(shared_dir / "weights" / "noiseprint++.th"))
    return recipe_state_dict(shapes, np_sd)


@pytest.fixture(scope="session")
def recipe_ckpt(recipe_state, tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("ckpt") / "trufor_recipe.pth.tar"
    torch.save({"state_dict": recipe_state}, p)
    return p


@pytest.fixture(scope="session")
def recipe_model(recipe_state):
    """TruFor in float32 with the recipe weights (eval mode). Tests must not modify it."""
    from trufor_lab.model import TruFor, strict_load
    from trufor_lab.weights import WeightsInfo
    m = TruFor()
    strict_load(m, recipe_state, "recipe")
    m.weights_info = WeightsInfo("custom", "recipe", "0" * 64, False, note="recipe weights (tests)")
    return m.eval()


@pytest.fixture(scope="session")
def parity_input(parity_dir) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(parity_dir / "parity_input.png").convert("RGB"))


@pytest.fixture(scope="session")
def tampered2(shared_dir) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(shared_dir / "images" / "tampered2.png").convert("RGB"))


@pytest.fixture()
def small_image(tampered2) -> np.ndarray:
    """A 96x96 crop of an official sample (fast on CPU)."""
    return tampered2[80:176, 80:176].copy()


@pytest.fixture(autouse=True)
def _close_figures():
    """Library figures are pyplot figures (so notebooks show them): close them after each test."""
    yield
    import sys
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
