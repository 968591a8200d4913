"""Every ``>>>`` example in the package's docstrings runs as a reader would paste it.

The examples name the reader's own things: ``model`` (``tl.load()``), files such as
``photo.jpg`` or ``viral.jpg`` in the working folder, an ``image`` with its ``mask``, and the
``result``, ``cap`` or ``ev`` of a neighbouring example. Here those are small real pictures (the
committed test-camera photos and forgeries made from them) and the demo model; an example
marked ``# doctest: +SKIP`` needs data or time CI does not have (a benchmark folder, a long
training run), and says so in its own text. Lines with an expected output (a ``True`` under
the example) are compared.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import io
import pkgutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import trufor_lab
import trufor_lab as tl
from trufor_lab.inference import weights as W

REAL = Path(__file__).parent / "data" / "real_photos"


def _module_tests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = []
    for info in pkgutil.walk_packages(trufor_lab.__path__, "trufor_lab."):
        if info.name.endswith("__main__"):
            continue  # running it would start the command line
        module = importlib.import_module(info.name)
        tests += [t for t in finder.find(module, info.name) if t.examples]
    return sorted(tests, key=lambda t: t.name)


TESTS = _module_tests()


def test_the_package_has_examples_to_run():
    assert len(TESTS) >= 20 and sum(len(t.examples) for t in TESTS) >= 60


def _crop(name: str, side: int, y: int = 0, x: int = 0) -> np.ndarray:
    rgb = np.asarray(Image.open(REAL / name).convert("RGB"))
    return rgb[y : y + side, x : x + side].copy()


@pytest.fixture(scope="module")
def reader_namespace(tmp_path_factory, one_thread):
    """The names and files the examples assume, built once: small, real, offline."""
    from trufor_lab.forensics.provenance import read_provenance
    from trufor_lab.lab.datasets import folder_dataset
    from trufor_lab.lab.evaluate import evaluate
    from trufor_lab.lab.forgeries import splice
    from trufor_lab.model.capture import capture

    root = tmp_path_factory.mktemp("reader")
    host, donor = _crop("IMG_1054.JPG", 160, 64, 64), _crop("IMG-20191006-WA0002.jpg", 160, 96, 96)
    forged = [splice(host, donor, seed=s) for s in (1, 2)]
    Image.fromarray(host).save(root / "photo.jpg", quality=90)
    Image.fromarray(host).save(root / "image.jpg", quality=90)
    Image.fromarray(forged[0].image).save(root / "photo.png")
    Image.fromarray(forged[0].image).save(root / "viral.jpg", quality=85)
    Image.fromarray(host).save(root / "earlier_post.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter
    Image.fromarray(host[:, :128]).save(root / "portrait.jpg", quality=90, exif=exif)
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for i, f in enumerate(forged):
        Image.fromarray(f.image).save(root / "images" / f"fake{i}.png")
        Image.fromarray(f.mask.astype(np.uint8) * 255).save(root / "masks" / f"fake{i}.png")
    Image.fromarray(host).save(root / "images" / "real.png")

    model = tl.load_trufor(W.find_demo(), kind="demo", device="cpu")
    x = torch.from_numpy(host).permute(2, 0, 1)[None].float() / 256
    with capture(model, ["fusion.stage1.ffm", "rgb.stage2.out"]) as cap:
        model(x)
    result = tl.analyze(model, root / "photo.jpg")
    ev = evaluate(model, folder_dataset(root / "images", root / "masks"), root / "runs", progress=False)
    names = {
        "tl": tl,
        "model": model,
        "x": x,
        "image": forged[0].image,
        "mask": forged[0].mask,
        "images": [f.image for f in forged],
        "masks": [f.mask for f in forged],
        "cap": cap,
        "result": result,
        "trufor_result": result,
        "provenance": read_provenance(root / "photo.jpg"),
        "ev": ev,
    }
    return root, names


@pytest.mark.parametrize("test", TESTS, ids=[t.name for t in TESTS])
def test_docstring_example_runs(test: doctest.DocTest, reader_namespace, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root, names = reader_namespace
    monkeypatch.chdir(root)
    globs = {**test.globs, **names}
    ran = 0
    try:
        for ex in test.examples:
            if ex.options.get(doctest.SKIP):
                continue
            out = io.StringIO()
            where = f"{test.name} (line {test.lineno + ex.lineno + 1}): {ex.source.strip()}"
            with contextlib.redirect_stdout(out):
                try:
                    exec(compile(ex.source, f"<{test.name}>", "single"), globs)
                except Exception as e:
                    pytest.fail(f"{where}\n  raised {type(e).__name__}: {e}")
            if ex.want.strip():
                assert out.getvalue().strip() == ex.want.strip(), where
            ran += 1
    finally:
        plt.close("all")
    assert ran or all(ex.options.get(doctest.SKIP) for ex in test.examples)
