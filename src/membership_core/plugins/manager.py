"""The per-portal plugin manager: built-in adapters, entry points, and the host's plugins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pluggy

from ..errors import ConfigurationError
from . import builtin, hookspecs
from .hookspecs import PROJECT_NAME
from .registry import AdapterRegistry

__all__ = ["Plugins"]


class Plugins:
    """A typed wrapper around one :class:`pluggy.PluginManager`, owned by one portal.

    The built-in adapters register first, exactly like third-party plugins;
    then plugins published under the ``membership_core`` entry-point group
    (unless ``load_entrypoints`` is false), then the ones passed in.
    ``blocked`` names entry-point plugins to leave out.
    """

    def __init__(
        self,
        plugins: Sequence[object] = (),
        *,
        load_entrypoints: bool = True,
        blocked: Sequence[str] = (),
    ) -> None:
        self.manager = pluggy.PluginManager(PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.manager.register(builtin, name="membership_core.builtin")
        for name in blocked:
            self.manager.set_blocked(name)
        if load_entrypoints:
            self.manager.load_setuptools_entrypoints(PROJECT_NAME)
        for plugin in plugins:
            try:
                self.manager.register(plugin)
            except ValueError as error:
                raise ConfigurationError(str(error), field="plugins") from error
        try:
            # A misspelled hook name fails here rather than being silently ignored.
            self.manager.check_pending()
        except pluggy.PluginValidationError as error:
            raise ConfigurationError(str(error), field="plugins") from error
        self.adapters = AdapterRegistry()
        self.manager.hook.membership_register_adapters(registry=self.adapters)

    @property
    def hook(self) -> Any:
        """The hook caller (``plugins.hook.membership_domain_event(...)``)."""
        return self.manager.hook
