"""Looking inside the network: the layer catalog and capture, feature statistics, ablations and
Captum attribution.

- (the layer catalog, ``list_layers``, and ``capture()`` live in :mod:`trufor_lab.model`: ``tl.capture``)
- ``features``: statistics and projections of captured feature maps.
- ``ablate``: reversible interventions (context managers) and ablation studies.
- ``attribute``: Captum adapters with one call shape, and target wrappers.
- ``attribution_calls``: what every attribution call checks and restores around Captum.

May import ``lab``, ``inference``, ``model``, ``viz`` and ``common``.
"""
