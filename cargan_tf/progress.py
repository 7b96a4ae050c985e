"""Progress bars: tqdm's widget in a notebook someone is watching, its text bar elsewhere.

A notebook executed by papermill or nbconvert saves a widget bar without its state, so the saved
notebook shows a frozen "0%"; a kernel run that way (env.in_headless_kernel) gets the text bar
instead, which the saved notebook shows as it ended, updated at most every few seconds.
"""

from __future__ import annotations

from tqdm.auto import tqdm as auto_tqdm
from tqdm.std import tqdm as text_tqdm

from cargan_tf.env import in_headless_kernel

HEADLESS_MININTERVAL_S = 5.0  # a saved notebook keeps every update of a text bar


def progress_bar(*args, **kwargs):
    """tqdm.auto.tqdm(*args, **kwargs), or the text tqdm in a kernel run without a front end."""
    if in_headless_kernel():
        kwargs.setdefault("mininterval", HEADLESS_MININTERVAL_S)
        return text_tqdm(*args, **kwargs)
    return auto_tqdm(*args, **kwargs)
