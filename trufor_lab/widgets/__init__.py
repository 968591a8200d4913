"""Interactive notebook front ends (ipywidgets): result, feature, compare, Noiseprint++ and failure
viewers.

May import every analysis layer (``interpret``, ``lab``, ``inference``, ...) and ``viz``.
"""
