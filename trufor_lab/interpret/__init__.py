"""Looking inside the network: the layer catalog and capture, feature statistics, ablations and
Captum attribution.

- (the layer catalog, ``list_layers``, and ``capture()`` live in :mod:`trufor_lab.model`: ``tl.capture``)
- ``features``: statistics and projections of captured feature maps.
- ``ablations``: reversible interventions (context managers) and their registry.
- ``ablate``: ablation studies (the interventions re-exported: the module users call).
- ``attribute``: Captum adapters with one call shape.
- ``targets``: target wrappers (what an attribution explains) and baselines.
- ``attribution``: the ``Attribution`` result and its plots.
- ``attribution_calls``: what every attribution call checks and restores around Captum.

May import ``lab``, ``inference``, ``model``, ``viz`` and ``common``.
"""
