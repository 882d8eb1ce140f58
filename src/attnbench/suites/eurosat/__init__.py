"""EuroSAT (Sentinel-2 land cover, 10 classes): feature-map attention in a CNN, sequence attention
in a ViT.

Loaders for both official on-disk formats (`data`), a synthetic stand-in for smoke runs
(`synthetic`), the two backbones (`model`), the metrics (`metrics`) and the suite (`suite`).
Importing this package stays torch-free.
"""

from attnbench.suites.eurosat.suite import EuroSATSuite

SUITE = EuroSATSuite()

__all__ = ["SUITE", "EuroSATSuite"]
