"""``python -m trufor_lab.notebooks --time``: the spelling of issue 18 for
``python -m trufor_lab.cli.notebooks`` (the runner lives in the cli layer; this module sits
above it in the import-linter layers and only calls it)."""

from __future__ import annotations

import sys

from trufor_lab.cli.notebooks import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
