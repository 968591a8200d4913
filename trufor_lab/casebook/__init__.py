"""The casebook and the written report: what a fact-checker opens and what they hand on.

- ``casebook``: the notebook casebook (tabs over one or several images).
- ``report``: the HTML/text report of one analysis.

May import every layer below it (``widgets``, ``lab``, ``interpret``, ``inference``, ...).
"""
