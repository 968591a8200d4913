"""``python -m trufor_lab``: the ``trufor-lab`` command, for an environment without its script."""

import sys

from trufor_lab.cli import main

if __name__ == "__main__":
    sys.exit(main())
