"""Interactive notebook front ends (ipywidgets): result, feature, compare, Noiseprint++ and failure
viewers.

One call shape for every viewer:

- **Built from what it shows**, first argument: Results (one or a list; an Attribution is
  shown as its ``to_result()``) for ``ResultViewer``, ``CompareViewer`` and ``NoiseprintViewer``
  (one result); ``(model, image)`` for ``FeatureExplorer``, which runs the model once (or a
  Result already analysed with ``capture=``); an evaluation for ``FailureGallery``.
- **The same keywords** where they apply: ``masks=`` (ground truth, one per result in order,
  ``None`` for none, outlined in yellow), ``titles=`` (one per result), and the drawing options
  by the same names (``opacity``, ``threshold``, ``conf_min``, ``cmap``, ``zoom``).
- **The same methods**: ``set(**state)`` changes what is shown (the controls call it; returns
  the PNG), ``state`` the current settings, ``figure()`` a static matplotlib Figure of them (for
  scripts, CI and reports: no widget, no browser), ``png`` its picture, ``widget`` the ipywidgets
  UI (None without ipywidgets), ``close()`` closes every control.
- **Displayed** by ending a cell with the viewer: the widget where widgets render, with the
  static picture in the same output as a fallback (a converted page, a CI log).

>>> from trufor_lab.interpret import ablate
>>> from trufor_lab.widgets.compare_viewer import CompareViewer
>>> full, rgb = tl.analyze(model, image), ablate.rgb_only(model).analyze(image)
>>> v = CompareViewer([full, rgb], titles=["full", "rgb_only"], masks=[mask, mask])
>>> png = v.set(panel="map", threshold=0.5)  # what the controls do
>>> v.figure().savefig("compare.png")  # the same picture, no browser

May import every analysis layer (``interpret``, ``lab``, ``inference``, ...) and ``viz``.
"""
