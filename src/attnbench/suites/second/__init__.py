"""SECOND semantic change detection: feature-map attention in a siamese encoder.

Loaders for the official PNG layout and SCanNet's split lists (`data`), a synthetic stand-in for
smoke runs (`synthetic`), the network (`model`), its losses (`losses`), the official scores
(`metrics`) and the suite (`suite`). Importing this package stays torch-free.
"""

from attnbench.suites.second.suite import SecondSuite

SUITE = SecondSuite()

__all__ = ["SUITE", "SecondSuite"]
