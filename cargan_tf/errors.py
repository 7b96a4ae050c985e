"""Errors a user can act on. The CLI prints them as one `error:` line without a traceback:
exit code 1 for a failing environment (RunFolderError, or one caused by a full disk, a
read-only folder ...), 2 for input it refuses (cli.describe_failure)."""


def first_line(err: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type when empty), for one-line reports."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__


class CarganError(Exception):
    """Base class: the message says what is wrong and what to do."""


class DataError(CarganError, ValueError):
    """Input data is missing, empty or unreadable."""


class ConfigError(CarganError, ValueError):
    """A configuration value is invalid, or a resume would change what the run is."""


class RunFolderError(CarganError, OSError):
    """A run folder cannot be read or written (missing, read-only, full, vanished)."""
