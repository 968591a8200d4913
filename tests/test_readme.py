"""The README's first commands work on a fresh clone."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

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
