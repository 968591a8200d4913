"""The TruFor network, one module per box of the paper's figure.

- :mod:`.noiseprint`  Noiseprint++ extractor (DnCNN)
- :mod:`.segformer`   MiT building blocks (patch embedding, SRA, Mix-FFN)
- :mod:`.encoder`     dual MiT encoder (RGB + Noiseprint++ branches)
- :mod:`.fusion`      CMX fusion: FRM and FFM
- :mod:`.decoder`     all-MLP decoders (anomaly, confidence)
- :mod:`.detection`   confidence-pooled detection head
- :mod:`.trufor`      the whole network
- :mod:`.config`      architecture sizes (a variant is a config)
- :mod:`.attention`   exact scaled dot-product attention with bounded memory
- :mod:`.recipe`      deterministic weights rebuilt from key names
- :mod:`.catalog`     the layer catalog (``list_layers``)
- :mod:`.capture`     activation capture (``capture()``), hooks always removed
- :mod:`.interventions` which ablations and captures are active on a model
- :mod:`.checkpoint`  safe reading and strict loading
- :mod:`.identity`    which weights a loaded network holds (changed in memory: not the file's)
- :mod:`.precision`   IEEE float32 contexts, native bfloat16 detection
- :mod:`.layout`      channels-last convolution weights for a call
- :mod:`.strips`      row strips of a convolution with its halo rows
- :mod:`.winograd`    the fast mode's Winograd Noiseprint++ convolutions (CPU, NNPACK)
- :mod:`.lean`        memory-lean exact forward

May import ``common`` only (and torch): the network knows nothing of the toolkit around it.
"""

from .checkpoint import CheckpointError, extract_state_dict, read_checkpoint, strict_load
from .config import MIT_B0, MIT_B2, TruForConfig, stage_sizes
from .detection import STATISTIC_NAMES, weighted_statistics_pooling
from .encoder import BRANCHES, DualMiTEncoder, FeatureInfo
from .noiseprint import HalfPrecisionWarning, Noiseprint, exact_float32
from .trufor import TruFor, TruForOutput

__all__ = [
    "BRANCHES",
    "CheckpointError",
    "DualMiTEncoder",
    "FeatureInfo",
    "HalfPrecisionWarning",
    "MIT_B0",
    "MIT_B2",
    "Noiseprint",
    "STATISTIC_NAMES",
    "TruFor",
    "TruForConfig",
    "TruForOutput",
    "exact_float32",
    "extract_state_dict",
    "read_checkpoint",
    "stage_sizes",
    "strict_load",
    "weighted_statistics_pooling",
]
