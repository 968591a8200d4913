"""``python -m trufor_lab.cli``."""

import sys

from trufor_lab.cli import main

sys.exit(main())
