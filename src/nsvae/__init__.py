"""nsvae: disentangled representations with synergy-aware VAEs.

The information-theory library lives in :mod:`nsvae.info` and needs only
numpy and scipy.
"""

__version__ = "0.1.0"
