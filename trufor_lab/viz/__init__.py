"""Figures (matplotlib: ``ax``/``fig`` in, Figure out, never ``plt.show()``) and widgets."""
from trufor_lab.viz.figures import plot_result

__all__ = ["plot_result"]
