"""HAAQI: Hearing-Aid Audio Quality Index."""

from clarity.evaluator.haaqi.haaqi import compute_haaqi, haaqi_v1

__all__ = ["compute_haaqi", "haaqi_v1"]
