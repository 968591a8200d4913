"""Getting an answer: weights, the input contract, loading, ``analyze()`` and the ``Result``.

- ``weights``: finding, verifying and downloading checkpoints.
- ``signing``: the per-user key that signs install records, and the check of a record.
- ``preprocess``: the input contract (any image -> RGB / 256).
- ``load``: ``load()``, ``load_trufor()``, ``load_noiseprint()``, ``untrained()``.
- ``result``: the ``Result`` dataclass.
- ``stored``: the records an output npz carries, and whether a stored output is reused.
- ``analyze``: ``analyze()``, the one call that turns an image into a ``Result``.
- ``predict``: inference modes (exact, fast, lean) over the raw network.
- ``modes``: ``InferenceMode`` (the exact and fast presets) and the label an output records.
- ``deviation``: how far one output is from another (a mode from exact, a device from another).
- ``distributed``: sharded batch analysis across processes.
- ``samples``: the official sample images, or offline stand-ins.

May import ``model``, ``viz``, ``forensics`` and ``common``.
"""
