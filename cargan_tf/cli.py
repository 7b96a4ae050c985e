"""The command-line interface: one subcommand per module in cargan_tf/commands/.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``func=run``; ``run(args) -> int`` does the work. Modules import TensorFlow inside ``run``
only, so ``--help`` and light commands stay fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import traceback

from cargan_tf.errors import CarganError, RunFolderError, first_line

# Order here is the order in `--help`.
COMMAND_MODULES = (
    "download",
    "prepare",
    "train",
    "sample",
    "directions",
    "plot",
    "gif",
    "evaluate",
    "compare",
    "inpaint",
    "restore",
    "project",
    "export",
    "serve",
)
DEBUG_ENV = "CARGAN_DEBUG"
EXIT_ENVIRONMENT = 1  # the machine failed the command: disk full, read-only, out of memory ...
EXIT_BAD_INPUT = 2  # the command refused its input: arguments, files, folders, a config
# errnos that name a path given wrongly (missing, a file where a folder is needed or the other
# way round, a symlink loop) rather than a failing machine
_INPUT_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG,
                           errno.EEXIST, errno.ENOTEMPTY, errno.ELOOP})
EPILOG = f"""\
exit codes and errors:
  0    done
  1    the environment failed while the command worked: disk or Drive quota full, a
       read-only, vanished or unreachable folder, permission denied, out of memory, a run
       folder in use by another trainer; fix that and rerun the same command (a run resumes
       from its last checkpoint; files already written are never replaced by partial ones)
  2    the command refused its input: an argument, a file or folder that is missing or not
       what it should be, a config that does not fit the run; fix the command line
  130  interrupted (Ctrl-C)
  Each failure is one line starting with "error:" that says what to do; {DEBUG_ENV}=1 adds
  the traceback (for bug reports).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cargan_tf",
        description="Train DCGANs that design cars (and Fashion-MNIST clothes) with Keras 3.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"cargan_tf.commands.{name}").register(subparsers)
    return parser


def _tf_errors():
    """tensorflow.errors if TensorFlow is loaded (it is never imported just to check)."""
    tf = sys.modules.get("tensorflow")
    return getattr(tf, "errors", None) if tf is not None else None


def _chain(err: BaseException | None):
    """`err` and the exceptions that caused it (`raise ... from None` ends the chain)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ if err.__cause__ is not None or err.__suppress_context__ \
            else err.__context__


def _is_environment(err: BaseException) -> bool:
    """Whether `err`, or what caused it, is a failure of the machine rather than the input."""
    tf_errors = _tf_errors()
    for link in _chain(err):
        if isinstance(link, RunFolderError | MemoryError):
            return True
        if tf_errors is not None and isinstance(link, tf_errors.OpError):
            return True
        if isinstance(link, OSError) and not isinstance(link, CarganError) \
                and link.errno not in _INPUT_ERRNOS:
            return True
    return False


_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space (on Colab: Drive's quota, and its Trash) and "
                  "rerun the same command; what was already written is intact",
    errno.EROFS: "a read-only file system: write somewhere writable (another --out or "
                 "--run-dir), or remount it writable",
    errno.EACCES: "permission denied: fix the folder's permissions or write somewhere else",
    errno.EPERM: "not permitted: fix the folder's permissions or write somewhere else",
    errno.ENOTCONN: "the folder's storage is disconnected (Drive unmounted?): mount it again "
                    "and rerun the same command",
    errno.EIO: "an input/output error from the storage (Drive disconnected, a failing disk): "
               "check it and rerun the same command",
    errno.ENOMEM: "out of memory: use fewer or smaller images, or a smaller --batch-size",
}
if hasattr(errno, "EDQUOT"):
    _OS_HINTS[errno.EDQUOT] = _OS_HINTS[errno.ENOSPC].replace("the disk is full",
                                                              "the disk quota is exceeded")
if hasattr(errno, "ESTALE"):
    _OS_HINTS[errno.ESTALE] = _OS_HINTS[errno.ENOTCONN]


def describe_failure(err: BaseException) -> tuple[int, str] | None:
    """(exit code, one-line message) for a failure the CLI reports without a traceback:
    a CarganError, an OSError, a MemoryError or a TensorFlow error (tf.errors.OpError); None
    for anything else (a bug: Python's traceback is the report)."""
    code = EXIT_ENVIRONMENT if _is_environment(err) else EXIT_BAD_INPUT
    if isinstance(err, CarganError):
        return code, str(err).strip() or type(err).__name__
    if isinstance(err, OSError):
        where = f" ({err.filename})" if err.filename else ""
        what = err.strerror or first_line(err)
        hint = _OS_HINTS.get(err.errno) or (
            "check the path" if err.errno in _INPUT_ERRNOS
            else f"rerun with {DEBUG_ENV}=1 for the details")
        return code, f"{what}{where}: {hint}"
    if isinstance(err, MemoryError):
        return EXIT_ENVIRONMENT, ("out of memory: use fewer or smaller images, or a smaller "
                                  "--batch-size")
    tf_errors = _tf_errors()
    if tf_errors is not None and isinstance(err, tf_errors.OpError):
        text = first_line(err, 240)
        if isinstance(err, tf_errors.ResourceExhaustedError) and (
                "OOM" in text or "alloc" in text.lower()):
            hint = ("out of memory on the device: lower --batch-size (or the image size), or "
                    "use a machine with more memory, then rerun the same command")
        elif isinstance(err, tf_errors.ResourceExhaustedError) or "No space left" in text:
            hint = _OS_HINTS[errno.ENOSPC]
        else:
            hint = f"rerun with {DEBUG_ENV}=1 for the traceback"
        return EXIT_ENVIRONMENT, f"TensorFlow {type(err).__name__}: {text}; {hint}"
    return None


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    except Exception as err:
        failure = describe_failure(err)
        if failure is None:
            raise  # a bug: the traceback is what to report
        code, message = failure
        if _debug():
            traceback.print_exc()
        print(f"error: {message}", file=sys.stderr)
        return code
