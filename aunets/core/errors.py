"""Exception hierarchy. Every error says what went wrong and how to fix it."""

from __future__ import annotations


class AunetsError(Exception):
    """Base class of all errors raised by AUNets Live."""


class SourceError(AunetsError):
    """A capture source could not be opened or read (missing file, unsupported format, camera)."""


class EngineError(AunetsError):
    """An engine bundle is missing, corrupt, or does not match the runtime."""


class ManifestError(EngineError):
    """An engine manifest is malformed or inconsistent with its files."""


class ConfigError(AunetsError):
    """A configuration value is invalid."""


class MissingExtraError(AunetsError):
    """An optional dependency is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"this feature needs the Python package '{module}', which is not installed; "
            f"install it with: pip install -e '.[{extra}]'"
        )
        self.module = module
        self.extra = extra
