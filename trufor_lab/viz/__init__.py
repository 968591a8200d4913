"""Figures: numpy arrays and records in (anything with the right fields, e.g. a ``Result``),
a matplotlib Figure out (``ax``/``fig`` accepted, pyplot imported lazily, never ``plt.show()``).

- ``figures``: result panels, feature grids, PCA pictures, statistics.
- ``noiseprint``: the Noiseprint++ map, its local variance and spectrum.
- ``display``: large arrays at screen size (block means, never a stride), colour limits.

May import ``common`` only: the analysis types call down into these functions, never the reverse.
"""

from trufor_lab.viz.figures import plot_result

__all__ = ["plot_result"]
