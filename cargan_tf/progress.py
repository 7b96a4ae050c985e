"""Progress bars: tqdm's widget in a notebook someone is watching, its text bar elsewhere.

A notebook executed by papermill or nbconvert saves a widget bar without its state, so the saved
notebook shows a frozen "0%"; a kernel run that way (notebook.headless_executor) gets the text
bar instead, which the saved notebook shows as it ended, updated at most every few seconds.
"""

from __future__ import annotations

import functools

HEADLESS_MININTERVAL_S = 5.0  # a saved notebook keeps every update of a text bar


@functools.cache  # who runs this process does not change: read /proc once, not per bar
def _in_headless_kernel() -> bool:
    from cargan_tf.notebook import headless_executor, in_ipython_kernel

    return in_ipython_kernel() and headless_executor() is not None


def progress_bar(*args, **kwargs):
    """tqdm.auto.tqdm(*args, **kwargs), or the text tqdm in a kernel run without a front end."""
    if _in_headless_kernel():
        from tqdm.std import tqdm

        kwargs.setdefault("mininterval", HEADLESS_MININTERVAL_S)
        return tqdm(*args, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(*args, **kwargs)
