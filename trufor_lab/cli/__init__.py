"""The ``trufor-lab`` command line: a thin layer over the same functions a user calls.

Top layer: may import everything; nothing imports it.
"""
from trufor_lab.cli.main import main

__all__ = ["main"]
