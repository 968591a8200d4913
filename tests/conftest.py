"""Shared fixtures. Reference data is read from ../shared (or $TRUFOR_LAB_SHARED), never copied."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent

if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n 2 on two cores: one thread per worker and per child
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


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
    from trufor_lab.model.recipe import manifest_shapes, recipe_state_dict

    shapes = manifest_shapes(parity_dir / "trufor_state_dict_manifest.json")
    np_sd = extract_state_dict(read_checkpoint(shared_dir / "weights" / "noiseprint++.th"))
    return recipe_state_dict(shapes, np_sd)


@pytest.fixture(scope="session")
def recipe_ckpt(recipe_state, tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("ckpt") / "trufor_recipe.pth.tar"
    torch.save(official_container(recipe_state), p)
    return p


def official_container(state_dict: dict[str, torch.Tensor]) -> dict:
    """The container the official training script writes (``trufor.pth.tar``): the epoch, the
    best validation metric (a numpy float64), its name, the weights and the SGD optimizer state."""
    trainable = [
        k for k in state_dict if k.startswith(("decode_head_conf.", "detection.")) and state_dict[k].is_floating_point()
    ]
    return {
        "epoch": 81,
        "best_value": np.float64(0.8731),
        "best_key": "avg_det_bacc",
        "state_dict": state_dict,
        "optimizer": {
            "state": {i: {"momentum_buffer": torch.zeros_like(state_dict[k])} for i, k in enumerate(trainable)},
            "param_groups": [
                {
                    "lr": 0.005,
                    "momentum": 0.9,
                    "dampening": 0,
                    "weight_decay": 0.0005,
                    "nesterov": False,
                    "params": list(range(len(trainable))),
                }
            ],
        },
    }


@pytest.fixture(scope="session")
def recipe_model(recipe_state, recipe_ckpt):
    """TruFor in float32 with the recipe weights (eval mode). Tests must not modify it.

    Its ``weights_info`` names the ``recipe_ckpt`` file (same weights, same sha256), so outputs
    it writes are reused by the CLI run with ``recipe_ckpt``."""
    from trufor_lab.model import TruFor, strict_load
    from trufor_lab.inference.weights import WeightsInfo, sha256_of

    m = TruFor()
    strict_load(m, recipe_state, "recipe")
    m.weights_info = WeightsInfo(
        "custom", str(recipe_ckpt), sha256_of(recipe_ckpt), False, note="recipe weights (tests)"
    )
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


@pytest.fixture()
def array_result():
    """Build a Result from arrays, no model: ``make(h, w, **fields)`` gives a random image and
    Noiseprint++, a ramp map, full confidence and score 0.4; ``fields`` replace any of them."""
    from trufor_lab.inference.result import Result

    def make(h: int, w: int, **kw) -> Result:
        rng = np.random.default_rng(0)
        d = dict(
            image=rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
            noiseprint=rng.standard_normal((h, w)).astype(np.float32),
            map=np.linspace(0, 1, h * w, dtype=np.float32).reshape(h, w),
            conf=np.ones((h, w), np.float32),
            score=0.4,
            name="synthetic",
        )
        d.update(kw)
        return Result(**d)

    return make


@pytest.fixture(autouse=True)
def _close_figures():
    """Library figures are pyplot figures (so notebooks show them): close them after each test."""
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


# -- a small folder dataset (evaluation and failure analysis) ---------------------------------
# (file name, mask box (y0, y1, x0, x1) or None for a real, image size (h, w), JPEG quality or None)
EVAL_ITEMS = [
    ("fake_a.png", (16, 44, 20, 48), (64, 64), None),
    ("fake_b.jpg", (8, 40, 30, 54), (64, 64), 60),
    ("fake_c.png", (30, 35, 30, 35), (64, 60), None),  # tiny region, side not a multiple of 8
    ("real_a.png", None, (64, 64), None),
    ("real_b.jpg", None, (64, 64), 90),
]


def _make_folder_dataset(root: Path, items=EVAL_ITEMS) -> tuple[Path, Path]:
    """images/ + masks/ (white = forged, same stem, PNG) with spliced fakes and pristine reals."""
    imgs, masks = root / "images", root / "masks"
    imgs.mkdir(parents=True)
    masks.mkdir()
    from PIL import Image
    from trufor_lab.lab.forgeries import demo_images

    pics = list(demo_images(64).values())
    for i, (name, box, (h, w), q) in enumerate(items):
        img = pics[i % len(pics)][:h, :w].copy()
        if box is not None:
            y0, y1, x0, x1 = box
            donor = pics[(i + 1) % len(pics)]
            img[y0:y1, x0:x1] = donor[y0:y1, x0:x1]
            m = np.zeros((h, w), np.uint8)
            m[y0:y1, x0:x1] = 255
            Image.fromarray(m).save(masks / (Path(name).stem + ".png"))
        if q is None:
            Image.fromarray(img).save(imgs / name)
        else:
            Image.fromarray(img).save(imgs / name, quality=q)
    return imgs, masks


@pytest.fixture(scope="session")
def make_folder_dataset():
    """``make(root, items=...) -> (images_dir, masks_dir)``; ``make.items`` lists the default items
    (name, forged box or None, (h, w), JPEG quality or None)."""
    _make_folder_dataset.items = EVAL_ITEMS
    return _make_folder_dataset


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: on 2 shared cores this is several times faster than oversubscribing."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_config():
    """A TruFor small enough for hooks, threads and attribution tests (two blocks in stage 2, so
    that block names are tested beyond the first; three Noiseprint++ levels)."""
    from trufor_lab.model import TruForConfig

    return TruForConfig(
        embed_dims=(8, 16, 24, 32),
        depths=(1, 2, 1, 1),
        num_heads=(1, 2, 2, 4),
        sr_ratios=(4, 2, 2, 1),
        decoder_embed_dim=16,
        np_levels=3,
    )


@pytest.fixture(scope="module")
def tiny(tiny_config):
    """A randomly initialised (seed 0) TruFor of :func:`tiny_config`, in eval mode, one per module."""
    from trufor_lab.model import TruFor

    torch.manual_seed(0)
    return TruFor(tiny_config).eval()


@pytest.fixture(scope="session")
def failure_rows():
    """``make(n)``: ``n`` evaluation rows of missed fakes (every column of the row schema, the
    float ones NaN), enough for a FailureGallery without any image on disk."""
    import math

    from trufor_lab.lab.eval_rows import ROW_COLUMNS

    def make(n: int) -> list[dict]:
        rows = []
        for i in range(n):
            r = {k: (math.nan if t == "float" else None) for k, t in ROW_COLUMNS.items()}
            r.update(dataset="toy", id=f"f{i}", label=1, status="ok", score=0.1, f1_best=0.1, height=64, width=64)
            rows.append(dict(r, case="fake", reason="missed"))
        return rows

    return make


@pytest.fixture()
def with_weights(monkeypatch, recipe_ckpt):
    """The CLI's weights are the recipe checkpoint (``TRUFOR_WEIGHTS``) for this test."""
    monkeypatch.setenv("TRUFOR_WEIGHTS", str(recipe_ckpt))
