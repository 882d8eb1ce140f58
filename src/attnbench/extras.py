"""Optional dependencies: each is imported where it is needed, or refused in one line that names the
extra installing it, so that the core install stays light and a missing package is never a
traceback."""

from __future__ import annotations

import importlib.util
from typing import Any

from attnbench.errors import ConfigError

PRETRAINED_HINT = "pip install 'attnbench[pretrained]'"


def require_transformers() -> Any:
    """The transformers module, or a ConfigError that says how to install it."""
    try:
        import transformers
    except ImportError as exc:
        raise ConfigError(
            f"pretrained mechanisms need transformers ({exc}); install it with {PRETRAINED_HINT}"
        ) from None
    return transformers


def require_vision(
    suite: str = "EuroSAT", modules: tuple[str, ...] = ("PIL", "tifffile", "sklearn")
) -> None:
    """A clear error, not an ImportError, when the `vision` extra is not installed."""
    packages = {"PIL": "pillow", "tifffile": "tifffile", "sklearn": "scikit-learn"}
    missing = [packages[module] for module in modules if importlib.util.find_spec(module) is None]
    if missing:
        raise ConfigError(f"{suite} needs {', '.join(missing)}: pip install 'attnbench[vision]'")
