"""Interactive notebook front ends (ipywidgets): result, feature, compare and failure viewers.

May import every analysis layer (``interpret``, ``lab``, ``inference``, ...) and ``viz``.
"""
