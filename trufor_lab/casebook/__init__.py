"""The casebook and the written report: what a fact-checker opens and what they hand on.

- ``casebook``: the notebook casebook (tabs over one or several images).
- ``app``: the casebook as a small web app (``trufor-lab casebook``).
- ``classic_tab``: the "Classic filters" tab (ELA, noise level, JPEG ghosts, double-JPEG map).
- ``compare``: two versions of one picture, their difference and both analyses.
- ``align``: version B brought onto A's pixel grid.
- ``tilt``: a small rotation of B found and undone.
- ``reading``: the plain-language reading of a result.
- ``report``: the HTML/text report of one analysis.

May import every layer below it (``widgets``, ``lab``, ``interpret``, ``inference``, ...).
"""
