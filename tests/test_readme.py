"""The README's first commands work on a fresh clone."""

from __future__ import annotations

import json
import re
import shlex
import sys
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


def test_the_readme_describes_the_first_photo_as_the_tools_own_provenance_reads_it():
    """The README called the first command's photo "an untouched camera photo"; the report on it
    warns "edited with software 'GIMP 2.10.18'" and "EXIF says 4608×3456 but the image is
    1280×960: resized" (its ATTRIBUTION.md: re-saved by GIMP). A class reading both was told two
    opposite things: whatever the provenance warns of is said where the photo is introduced."""
    from trufor_lab.forensics.provenance import read_provenance

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = " ".join(text[text.index("## Two commands") : text.index("## In Python")].split())
    block = re.search(r"```bash (.*?)```", section).group(1)
    words = shlex.split(block.replace("&&", " "))
    photo = read_provenance(ROOT / words[words.index("analyze") + 1])
    warned = {s.code for s in photo.signs if s.severity == "warning"}
    assert warned, "the photo's own warnings are what this test reads"
    said = {
        "software": photo.software.split()[0] in section and "re-saved" in section,
        "exif_size": "downsized" in section,
    }
    assert {code: said.get(code, False) for code in warned} == dict.fromkeys(warned, True), section[:900]
    assert "untouched" not in section


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


def _undefined_names(blocks: list[str]) -> list[str]:
    """Names the README's Python blocks read before any of them (in order) assigns or imports them."""
    import ast
    import builtins

    known, missing = set(dir(builtins)), []
    for block in blocks:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                known |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                known.add(node.id)
            elif isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name):
                known.add(node.optional_vars.id)
        for node in ast.walk(ast.parse(block)):  # stores anywhere in a block count for it (a loop)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in known:
                missing.append(node.id)
    return missing


def test_the_readme_python_blocks_define_every_name_they_use():
    """A reader pastes the README's blocks in order: ``img``, ``mask``, ``x``, ``target``, ``donor``
    and ``result`` were used without being made anywhere (NameError on the first line that ran)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 3 and _undefined_names(blocks) == []
    assert _undefined_names(["y = x + 1"]) == ["x"]  # the check itself sees a missing name


def _subcommand_options() -> dict[str, set[str]]:
    """Every ``trufor-lab`` subcommand -> its option strings (``bench`` too: it lives in the checkout)."""
    import argparse

    from trufor_lab.cli import build_parser

    sys.path.insert(0, str(ROOT))  # where `bench` is found, as `python -m trufor_lab` from the root finds it
    try:
        parser = build_parser()
    finally:
        sys.path.remove(str(ROOT))
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return {name: {o for a in p._actions for o in a.option_strings} for name, p in subs.items()}


def test_the_command_line_section_names_every_subcommand():
    """The README's command summary left out ``bench`` (``trufor-lab --help`` lists it in a checkout)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Command line\s*```\n(.*?)```", text, re.S).group(1)
    named = set()
    for line in block.splitlines():
        m = re.match(r"\s*trufor-lab ([a-z| -]+?)(?:\s{2,}|\.\.\.|$| [A-Z\[])", line)
        if m:
            named |= {w.split()[0] for w in m.group(1).split("|") if w.strip()}
    subs = _subcommand_options()
    assert "bench" in subs and set(subs) - named == set(), sorted(set(subs) - named)


def _unknown_options(text: str, subs: dict[str, set[str]]) -> list[str]:
    """``trufor-lab SUB ...`` spans (inline code or a line of a code block) naming an option SUB lacks."""
    bad = []
    for m in re.finditer(r"trufor-lab ([a-z-]+)([^`\n]*)", text):
        sub, rest = m.group(1), m.group(2)
        if sub not in subs:
            continue  # prose ("the trufor-lab command"), checked by the section test
        bad += [f"{sub} {o}" for o in re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", rest) if o not in subs[sub]]
    return bad


def test_every_option_the_docs_give_a_subcommand_exists():
    subs = _subcommand_options()
    for doc in ("README.md", "ARCHITECTURE.md", "weights/README.md", "weights/DEMO_MODEL_CARD.md", "bench/README.md"):
        assert _unknown_options((ROOT / doc).read_text(encoding="utf-8"), subs) == [], doc
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        assert _unknown_options(text, subs) == [], nb.name
    assert _unknown_options("`trufor-lab analyze x -o y --fast`", subs) == ["analyze --fast"]


def test_the_readme_names_the_detection_metrics_deviations():
    """The README said detection AUC and balanced accuracy are computed "as the official script
    computes them", but ``detection_metrics`` gives no balanced accuracy of scores outside 0..1
    (the official script thresholds logits at 0.5 too) and a NaN AUC for one class (the official
    script raises): both are checked here against the code, then looked for in the README."""
    import math

    from trufor_lab.lab.metrics import detection_metrics

    assert math.isnan(detection_metrics([-2.0, 3.0, 0.4, 0.9], [0, 1, 0, 1]).balanced_accuracy)  # logits
    assert math.isnan(detection_metrics([0.2, 0.9], [1, 1]).auc)  # one class
    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    paragraph = text[text.index("Metrics follow the official evaluation script") :][:1200]
    assert "no 0.5 threshold on scores outside 0..1" in paragraph, paragraph
    assert "one-class set gets a NaN AUC where the official script raises" in paragraph, paragraph


def test_the_readme_provenance_example_runs(tmp_path, monkeypatch):
    """The README's read_provenance block, pasted as written, on a photo it names (``photo.jpg``,
    made here with EXIF): it needs no model, so it runs whole."""
    from PIL import Image

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "read_provenance" in b]
    exif = Image.Exif()
    exif[0x010F], exif[0x0131] = "Canon", "GIMP 2.10"
    Image.new("RGB", (64, 48), (90, 120, 150)).save(tmp_path / "photo.jpg", quality=90, exif=exif)
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(block, "README.md", "exec"), names)
    assert "edited with software 'GIMP 2.10'" in str(names["prov"].signs) and names["prov"].rows()
