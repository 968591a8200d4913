"""Shared jobs, written once: atomic files, output paths, tables, number formatting, images.

Layer 0: may import the standard library, numpy, PIL and torch (pandas lazily), nothing else of
trufor_lab.
"""
