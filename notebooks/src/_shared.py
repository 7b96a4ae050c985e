"""The cells every notebook shares, added by build_notebooks.py; `part=` names each group.

install, parameters, setup: the frame, around every notebook's title and parameters cell.
gpu, outputs, unmount: where a notebook's source says `# %% include="gpu"` (or the others).
`{stem}`, `{repo_url}` and `{wheel}` are filled in per notebook (plain text replacement).
"""

# Above the first cell: for the linter only (the parameters cell defines these in a notebook).
home, smoke = None, False

# %% [markdown] part="install"
# ## 0. Install (Colab only)
#
# In Google Colab, the next cell installs `cargan_tf` with `pip install --no-deps` from the first
# of these it finds, adds only the light dependencies Colab lacks (e.g. papermill) and checks that
# Colab's own TensorFlow (>= 2.16) and Keras (>= 3.5) are new enough. It never replaces Colab's
# TensorFlow, Keras or OpenCV. Anywhere else it does nothing: install locally with `make venv`.
#
# 1. **a wheel on Drive**: `make dist` in a clone writes `dist/{wheel}`; upload it to
#    `MyDrive/cargan/` (the newest `cargan_tf-*.whl` there is used);
# 2. **a clone on Drive** at `MyDrive/cargan/cargan_tf-repo`;
# 3. **`REPO_URL`**, the public repository (empty while the project has no public address).
#
# It runs only when `cargan_tf` is not installed yet, so papermill runs started from a Colab session
# skip it. Set `REINSTALL = True` after uploading a new wheel, then *Runtime > Restart session*.

# %% part="install"
# Colab only: install cargan_tf without touching Colab's TensorFlow, Keras or OpenCV.
import glob
import importlib.util
import os
import subprocess
import sys

DRIVE_DIR = "/content/drive/MyDrive/cargan"  # where the wheel or the clone is looked for
REPO_URL = "{repo_url}"  # the public repository ("": not public yet; cargan_tf/colab_links.py)
REINSTALL = False  # True after uploading a new wheel or updating the clone

if "google.colab" in sys.modules and (REINSTALL or importlib.util.find_spec("cargan_tf") is None):
    if not os.path.isdir("/content/drive/MyDrive"):
        from google.colab import drive

        drive.mount("/content/drive")  # asks once per runtime for access to your Drive
    wheels = sorted(glob.glob(f"{DRIVE_DIR}/cargan_tf-*.whl"), key=os.path.getmtime)[-1:]  # newest
    clones = glob.glob(f"{DRIVE_DIR}/cargan_tf-repo")
    found = wheels + clones + ([f"git+{REPO_URL}"] if REPO_URL else [])  # the first one is used
    if not found:
        raise FileNotFoundError("nothing to install cargan_tf from. Run `make dist` in a clone of the "
                                "repository and upload dist/{wheel} "
                                f"to the folder MyDrive/cargan of your Google Drive ({DRIVE_DIR}), "
                                "then run this cell again.")
    print("installing cargan_tf from", found[0])
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                    found[0]], check=True)
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
# `nb.setup` picks the home folder and creates `data/raw`, `data/prepared`, `runs` and `exports`
# in it (drive_layout.md in the repository describes them). In Colab it mounts Google Drive first,
# but only in an interactive session where `/content/drive/MyDrive` is not there yet: a papermill
# kernel has no front end to authorise Drive, and uses the mount of the session that started it.
# It also quiets TensorFlow's start-up messages and has image folders given to training prepared
# once, into `home/data/prepared`. Later cells use only `home` and the `nb` import of this cell.

# %% part="setup"
from cargan_tf import notebook as nb

home = nb.setup(home, smoke)  # the home folder (on Drive in Colab), with its subfolders

# %% [markdown] part="gpu"
# ## Which device trains: GPU, TPU or CPU
#
# The next cell says which device TensorFlow will train on. A full run wants a GPU: in Colab,
# *Runtime > Change runtime type > T4 GPU* (this notebook asks for one, but Colab gives a CPU
# runtime when none is free), then run the notebook again from the top; the run resumes. On a GPU,
# mixed precision computes in float16 and keeps float32 weights: notebook 02's `precision`
# parameter, `"mixed_float16"` (the CLI's `--set precision=mixed_float16`). A TPU runtime trains
# on its CPU here: a TPU needs the fused engine and `strategy=tpu` (README, "More than one device").
#
# What is measured: the tests run every notebook in smoke mode on a CPU, and one tiny epoch with
# `mixed_float16` (fused engine) on a CPU: float16 layers, float32 weights and losses. The speeds
# in BENCHMARKS.md are CPU speeds. Not measured yet: any GPU or TPU speed, and whether
# `mixed_float16` changes what a model learns.

# %% part="gpu"
import tensorflow as tf

gpus = tf.config.list_physical_devices("GPU")  # one device trains: the first GPU, if there is one
tpus = tf.config.list_physical_devices("TPU")  # used only with strategy=tpu (fused engine)
print("training on:", f"GPU ({gpus[0].name})" if gpus else "CPU", "(TPU attached, unused)" if tpus else "")
if not gpus and nb.in_colab() and not smoke:
    print("WARNING: no GPU in this runtime; a full run will take hours. Runtime > Change runtime "
          "type > T4 GPU, then run the notebook again from the top (the run resumes).")

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
