"""Progress bars: tqdm's widget in a notebook someone is watching, its text bar elsewhere.

A notebook executed by papermill or nbconvert saves a widget bar without its state, so the saved
notebook shows a frozen "0%"; a kernel run that way (notebook.headless_executor) gets the text
bar instead, which the saved notebook shows as it ended, updated at most every few seconds.
"""

from __future__ import annotations

HEADLESS_MININTERVAL_S = 5.0  # a saved notebook keeps every update of a text bar


def _in_headless_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    from cargan_tf.notebook import headless_executor

    return headless_executor() is not None


def progress_bar(*args, **kwargs):
    """tqdm.auto.tqdm(*args, **kwargs), or the text tqdm in a kernel run without a front end."""
    if _in_headless_kernel():
        from tqdm.std import tqdm

        kwargs.setdefault("mininterval", HEADLESS_MININTERVAL_S)
        return tqdm(*args, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(*args, **kwargs)
