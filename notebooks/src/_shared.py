"""The cells every notebook shares, added by build_notebooks.py; `part=` names each group.

install, parameters, setup: the frame, around every notebook's title and parameters cell.
outputs, unmount: where a notebook's source says `# %% include="outputs"` (or "unmount").
`{stem}` is replaced by the notebook's name (plain text replacement).
"""

# Above the first cell: for the linter only (the parameters cell defines these in a notebook).
home, smoke = None, False

# %% [markdown] part="install"
# ## 0. Install (Colab only)
#
# In Google Colab, the next cell installs `cargan_tf` with `pip install --no-deps`, adds only the
# light dependencies Colab lacks (e.g. papermill), and checks that Colab's own TensorFlow (>= 2.16)
# and Keras (>= 3.5) are new enough. It never replaces Colab's TensorFlow, Keras or OpenCV.
# Anywhere else it does nothing: install locally with `make venv` (see the README).
#
# Where it installs from:
# - **a clone on Drive**: put the repository at `MyDrive/cargan/cargan_tf-repo` (e.g. upload it, or
#   `!git clone <url> /content/drive/MyDrive/cargan/cargan_tf-repo` once). The cell mounts Drive
#   and uses it when it is there.
# - **the repository URL**: otherwise it installs from `REPO_URL`. The URL below is a placeholder
#   (the project's public address is not fixed yet): set it to the real repository.
#
# It runs only when `cargan_tf` is not installed yet, so papermill runs started from a Colab session
# skip it. Set `REINSTALL = True` after updating the clone, then *Runtime > Restart session*.

# %% part="install"
# Colab only: install cargan_tf without touching Colab's TensorFlow, Keras or OpenCV.
# Outside Colab this cell does nothing.
import importlib.util
import os
import subprocess
import sys

REPO_URL = "https://github.com/OWNER/cargan_tf"  # placeholder: set the real repository URL
DRIVE_REPO = "/content/drive/MyDrive/cargan/cargan_tf-repo"  # a clone of the repository on Drive
INSTALL_FROM = "auto"  # "auto": DRIVE_REPO if it exists, else REPO_URL; or "drive" / "url"
REINSTALL = False  # True after updating the clone or the repository

if "google.colab" in sys.modules and (REINSTALL or importlib.util.find_spec("cargan_tf") is None):
    if INSTALL_FROM != "url" and not os.path.isdir("/content/drive/MyDrive"):
        from google.colab import drive

        drive.mount("/content/drive")  # asks once per runtime for access to your Drive
    use_drive = INSTALL_FROM == "drive" or (INSTALL_FROM == "auto" and os.path.isdir(DRIVE_REPO))
    source = DRIVE_REPO if use_drive else "git+" + REPO_URL
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                    source], check=True)
    importlib.invalidate_caches()
    from cargan_tf.notebook import colab_install

    colab_install()  # the missing light dependencies, then the TensorFlow/Keras version check

# %% [markdown] part="parameters"
# ## 1. Parameters
#
# The next cell is tagged `parameters`: edit it here, or override any value from papermill, e.g.
# `papermill {stem}.ipynb out.ipynb -p smoke True -p home /tmp/cargan`.
# `home` is the folder everything goes into (`None`: `MyDrive/cargan` in Colab, `~/cargan`
# elsewhere, or `$CARGAN_HOME`); `smoke = True` runs the same steps at tiny sizes in seconds.

# %% [markdown] part="setup"
# ## 2. Home folder
#
# `setup_home` picks the home folder and creates `data/raw`, `data/prepared`, `runs` and `exports`
# in it (drive_layout.md in the repository describes them). In Colab it mounts Google Drive first,
# but only in an interactive session where `/content/drive/MyDrive` is not there yet: a papermill
# kernel has no front end to authorise Drive, and uses the mount of the session that started it.

# %% part="setup"
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # fewer TensorFlow start-up messages

from cargan_tf import notebook as nb

home = nb.setup_home(home, smoke)
# an image folder given as `data` to training is prepared once, into home/data/prepared
cache_dir = os.environ.setdefault("CARGAN_CACHE_DIR", str(home / "data" / "prepared"))

# %% [markdown] part="unmount"
# ## At the end of a long run: flush Drive
#
# Colab uploads files written to Drive in the background. Before you close the tab or the runtime
# is recycled, `drive.flush_and_unmount()` waits until everything (the last checkpoint, the
# pictures) is on Drive. The next cell calls it only in an interactive Colab session with Drive
# mounted; elsewhere it does nothing. Mount Drive again (rerun the home cell) to keep working.

# %% part="unmount"
flushed = nb.flush_and_unmount_drive(home)  # interactive Colab with Drive only

# %% [markdown] part="outputs"
# ## What this notebook wrote
#
# The list is also saved as `home/notebook_outputs/{stem}.json`, which the notebook tests read.
