"""Where this process runs: Colab or not, inside an IPython kernel or not, watched by a person
or executed headless (papermill, nbconvert), chief or worker of a cluster; and installing the
package into a Colab runtime without replacing Colab's own TensorFlow.

The bottom of the package: standard library only, so every other module may ask it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from cargan_tf.errors import CarganError

INTERACTIVE_ENV = "CARGAN_INTERACTIVE"         # "1"/"0" overrides the interactive-Colab guess
COLAB_ENV = "COLAB_RELEASE_TAG"                # set by every Colab runtime, kernels and shells

# Minimum versions of what Colab ships and we never replace: pyproject's floors, the oldest
# stack CI runs (requirements-colab.txt: Colab's TensorFlow 2.20.0 and Keras 3.13.2).
MIN_VERSIONS: dict[str, tuple[int, ...]] = {"tensorflow": (2, 20), "keras": (3, 13, 2)}
TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly")
# Light dependencies installed in Colab only when their *module* is missing: Colab has its own
# opencv-python, and adding opencv-python-headless beside it would give two competing cv2s.
LIGHT_DEPS: dict[str, str] = {
    "cv2": "opencv-python-headless>=4.8",
    "imageio": "imageio>=2.31",
    "matplotlib": "matplotlib>=3.7",
    "tqdm": "tqdm>=4.65",
    "nbformat": "nbformat>=5",
    "papermill": "papermill>=2.5",
}
# Processes that run a notebook without a front end. A kernel whose parent (or grandparent...)
# is one of these, or is itself a kernel (papermill called from inside a notebook), has nobody
# to click through Drive's authorisation, so drive.mount() would only wait until it times out.
HEADLESS_MARKERS = ("papermill", "nbclient", "nbconvert", "jupyter-execute", "ipykernel_launcher",
                    "colab_kernel_launcher")
# A kernel the Colab front end started has a Jupyter server as its parent process.
FRONT_END_MARKERS = ("jupyter", "colab")


# ---- where are we? -------------------------------------------------------------------------

def in_colab() -> bool:
    """True on a Google Colab runtime (interactive or not): google.colab is imported or
    importable, or the runtime's COLAB_RELEASE_TAG is set. The package's one Colab check."""
    if "google.colab" in sys.modules or COLAB_ENV in os.environ:
        return True
    try:
        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):
        return False


def in_ipython_kernel() -> bool:
    """True inside an IPython kernel (Jupyter, Colab, papermill), not a script or a shell."""
    try:
        from IPython import get_ipython  # here: IPython is optional (notebooks only)
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _ancestor_cmdlines(max_depth: int = 8) -> list[str]:
    """Command lines of this process's parent, grandparent, ... (Linux /proc; [] elsewhere)."""
    cmdlines, pid = [], os.getppid()
    for _ in range(max_depth):
        if pid <= 1:
            break
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        cmdlines.append(raw.replace(b"\0", b" ").decode(errors="replace").strip())
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # field 4 (ppid), after "(comm)"
    return cmdlines


def headless_executor(ancestors: list[str] | None = None) -> str | None:
    """The command line of the process that runs this kernel without a front end, or None.

    Headless: an ancestor matches HEADLESS_MARKERS (papermill, nbconvert, another kernel...),
    or the parent is not a Jupyter/Colab server at all (e.g. a Python script or pytest that
    calls papermill.execute_notebook). Without /proc (not Linux) nothing is known: None.
    """
    ancestors = _ancestor_cmdlines() if ancestors is None else ancestors
    for cmdline in ancestors:
        if any(marker in cmdline for marker in HEADLESS_MARKERS):
            return cmdline
    if ancestors and not any(marker in ancestors[0].lower() for marker in FRONT_END_MARKERS):
        return ancestors[0]
    return None


@functools.cache  # who runs this process does not change: read /proc once, not per bar
def in_headless_kernel() -> bool:
    """True in an IPython kernel that nobody watches (papermill, nbconvert...)."""
    return in_ipython_kernel() and headless_executor() is not None


def is_interactive_colab() -> bool:
    """True in a Colab notebook a person is looking at (so Drive can be mounted), else False.

    A heuristic, in order:
    1. CARGAN_INTERACTIVE=1 or 0 in the environment decides outright.
    2. Not Colab (in_colab()): False.
    3. Not inside an IPython *kernel* (e.g. `!python script.py` in Colab): False.
    4. headless_executor() finds who runs the kernel without a front end (papermill, nbclient,
       nbconvert, jupyter-execute, a kernel that started this one, or a parent that is not a
       Jupyter server): False. Such kernels share the VM's Drive mount if the interactive
       session made one, but cannot authorise a new one.
    5. Otherwise True: the Colab front end, through its Jupyter server, started this kernel.
    """
    forced = os.environ.get(INTERACTIVE_ENV)
    if forced in ("0", "1"):
        return forced == "1"
    if not in_colab() or not in_ipython_kernel():
        return False
    return headless_executor() is None


def is_chief_process(strategy: str) -> bool:
    """Whether this process writes the run folder under RunConfig.strategy `strategy`: always,
    except a non-chief worker of a multiworker cluster (is_chief_task)."""
    return strategy != "multiworker" or is_chief_task()


def is_chief_task(tf_config: str | None = None) -> bool:
    """Whether this process writes the run folder: True unless TF_CONFIG makes it a worker
    other than the cluster's chief (with no "chief" in the cluster, worker 0 plays that role,
    TensorFlow's convention). tf_config: the JSON text (default: $TF_CONFIG)."""
    text = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    spec = json.loads(text) if text.strip() else {}
    task = spec.get("task") or {}
    task_type, task_id = task.get("type"), int(task.get("index", 0))
    if task_type in (None, "chief"):
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in spec.get("cluster", {})


# ---- what this machine computes fast --------------------------------------------------------

# CPU flags for bfloat16 dot products in hardware (AMD Zen 4 and later, Intel Cooper Lake and
# Sapphire Rapids and later). Without them TensorFlow emulates bf16 at a tenth of float32's speed.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as Linux lists them; empty where /proc/cpuinfo is missing."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def nvidia_gpu_present(dev: str | os.PathLike = "/dev") -> bool:
    """True where an NVIDIA GPU's device file exists (Colab's GPU runtimes have /dev/nvidia0)."""
    return any(Path(dev).glob("nvidia[0-9]*"))


def auto_precision(flags: frozenset[str] | None = None, gpu: bool | None = None) -> tuple[str, str]:
    """What RunConfig.precision="auto" becomes on this machine, and why (one line).

    mixed_bfloat16 only on a machine without an NVIDIA GPU whose CPU has bf16 instructions:
    there it trains photo64 at batch 32 1.3-1.4x faster than float32 (BENCHMARKS.md). float32
    everywhere else: a CPU without them emulates bf16 ~10x slower, and a Colab T4 has no bf16.
    """
    flags = cpu_flags() if flags is None else flags
    gpu = nvidia_gpu_present() if gpu is None else gpu
    if gpu:
        return "float32", "an NVIDIA GPU is present (float32; try mixed_float16 yourself)"
    found = sorted(set(BF16_CPU_FLAGS) & set(flags))
    if found:
        return "mixed_bfloat16", f"this CPU does bfloat16 in hardware ({', '.join(found)})"
    return "float32", "this CPU has no bfloat16 instructions (avx512_bf16 / amx_bf16)"


# ---- installing in Colab -------------------------------------------------------------------

def _version_tuple(text: str) -> tuple[int, ...]:
    """'2.16.1' -> (2, 16, 1); '3.5.0rc1' -> (3, 5, 0); the leading numeric part only."""
    match = re.match(r"\d+(?:\.\d+)*", text.strip())
    return tuple(int(x) for x in match.group().split(".")) if match else ()


def installed_versions() -> dict[str, str | None]:
    """Installed tensorflow (any of its distributions) and keras versions, without importing."""
    found: dict[str, str | None] = {"tensorflow": None, "keras": None}
    for dist in TENSORFLOW_DISTRIBUTIONS:
        try:
            found["tensorflow"] = importlib.metadata.version(dist)
            break
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        found["keras"] = importlib.metadata.version("keras")
    except importlib.metadata.PackageNotFoundError:
        pass
    return found


def version_problems(versions: dict[str, str | None] | None = None) -> list[str]:
    """One line per package that is missing or older than MIN_VERSIONS; [] when all is well."""
    versions = installed_versions() if versions is None else versions
    problems = []
    for name, minimum in MIN_VERSIONS.items():
        have = versions.get(name)
        wanted = ".".join(map(str, minimum))
        if have is None:
            problems.append(f"{name} is not installed (cargan_tf needs {name} >= {wanted})")
        elif _version_tuple(have) < minimum:
            problems.append(f"{name} {have} is older than {wanted}, which cargan_tf needs")
    return problems


def missing_light_deps(deps: dict[str, str] | None = None) -> list[str]:
    """pip requirement strings for the LIGHT_DEPS whose module cannot be imported."""
    deps = LIGHT_DEPS if deps is None else deps
    return [spec for module, spec in deps.items() if importlib.util.find_spec(module) is None]


def package_source(repo_url_or_path: str) -> str:
    """What pip installs: a local folder as is, an https repository URL as git+https://..."""
    source = str(repo_url_or_path)
    if source.startswith(("http://", "https://")) and not source.endswith((".zip", ".tar.gz")):
        return "git+" + source
    return source


def install_commands(repo_url_or_path: str | None, missing: Sequence[str]) -> list[list[str]]:
    """The pip commands colab_install runs: the package with --no-deps, then the missing light
    dependencies. Never tensorflow, keras, numpy or opencv-python: Colab's stay."""
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    commands = []
    if repo_url_or_path:
        commands.append(pip + ["--no-deps", "--force-reinstall", package_source(repo_url_or_path)])
    if missing:
        commands.append(pip + list(missing))
    return commands


def colab_install(repo_url_or_path: str | None = None) -> list[list[str]]:
    """In Colab: install cargan_tf (pip --no-deps) and only the missing light dependencies,
    then check Colab's TensorFlow/Keras are new enough. Outside Colab: does nothing.

    repo_url_or_path: a clone (e.g. /content/drive/MyDrive/cargan/cargan_tf-repo), a git URL, or
    None when the package is already installed (the notebooks' first cell installs it itself,
    because it cannot import this module before). Returns the commands it ran.
    Raises CarganError, after printing what to do, when TensorFlow or Keras is too old.
    """
    if not in_colab():
        print("not in Colab: nothing to install (locally: `make venv` or "
              "`pip install -e '.[cpu,notebooks]'`)")
        return []
    commands = install_commands(repo_url_or_path, missing_light_deps())
    for command in commands:
        print("$ pip " + " ".join(command[3:]))
        subprocess.run(command, check=True)
    importlib.invalidate_caches()
    problems = version_problems()
    if problems:
        message = ("Colab's TensorFlow/Keras are too old for cargan_tf:\n  - " +
                   "\n  - ".join(problems) + "\ncargan_tf does not replace Colab's own TensorFlow. "
                   "Upgrade them yourself with\n  !pip install -U 'tensorflow>=2.20' 'keras>=3.13.2'\n"
                   "then Runtime > Restart session, and run the notebook again.")
        print(message)
        raise CarganError(message)
    versions = installed_versions()
    print(f"ready: tensorflow {versions['tensorflow']}, keras {versions['keras']}")
    return commands
