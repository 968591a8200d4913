"""Figures (matplotlib: ``ax``/``fig`` in, Figure out, never ``plt.show()``) and widgets."""
from .figures import plot_result

__all__ = ["plot_result"]
