"""pytest plugin for host test suites (registered through the ``pytest11`` entry point)."""
