"""attnbench: budget-matched benchmarking of attention mechanisms.

Importing the package stays cheap (no torch) so that the CLI starts fast; the parts that
need torch import it themselves.
"""

from attnbench._version import __version__

__all__ = ["__version__"]
