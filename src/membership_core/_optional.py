"""Optional dependencies, loaded when first needed, with an error naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import ConfigurationError

__all__ = ["EXTRAS", "load"]

#: The extra that installs each optional module.
EXTRAS: dict[str, str] = {
    "segno": "certificates",
    "cryptography": "badges",
    "reportlab": "pdf",
    "dns": "dns",
    "PIL": "images",
}


def load(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (a key of :data:`EXTRAS`) or raise ``ConfigurationError`` naming its extra.

    >>> load("json_nonexistent_module", "nothing")
    Traceback (most recent call last):
    ...
    KeyError: 'json_nonexistent_module'
    """
    extra = EXTRAS[module]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ConfigurationError(
            f"{purpose} needs the {module} package: install membership_core[{extra}]"
        ) from error
