"""Errors a user can act on. The CLI prints them without a traceback (exit code 2)."""


class CarganError(Exception):
    """Base class: the message says what is wrong and what to do."""


class DataError(CarganError, ValueError):
    """Input data is missing, empty or unreadable."""


class ConfigError(CarganError, ValueError):
    """A configuration value is invalid, or a resume would change what the run is."""


class RunFolderError(CarganError, OSError):
    """A run folder cannot be read or written (missing, read-only, full, vanished)."""
