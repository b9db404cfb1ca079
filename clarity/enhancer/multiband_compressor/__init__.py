"""Multiband dynamic range compressor: Linkwitz-Riley crossover + per-band compressors."""

from clarity.enhancer.multiband_compressor.compressor_qmul import Compressor
from clarity.enhancer.multiband_compressor.crossover import Crossover
from clarity.enhancer.multiband_compressor.multiband_compressor import MultibandCompressor

__all__ = ["Compressor", "Crossover", "MultibandCompressor"]
