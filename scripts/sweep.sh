#!/usr/bin/env bash
# A papermill sweep: run notebooks/02_train_dcgan.ipynb once per setting, each into its own run
# folder (HOME/runs/<run_name>) and its own executed notebook (HOME/sweeps/<sweep>/<run_name>.ipynb).
#
#   scripts/sweep.sh [--smoke] [--what presets|lr] [--epochs N] [HOME]
#
#   --smoke       tiny models and data (seconds per run): try the sweep before the real one
#   --what        presets: quick32, aim64 and dcgan64 on toycars (default)
#                 lr:      quick32 with three learning rates (lr_d = lr_g)
#   --epochs N    override the presets' epochs
#   HOME          the home folder (default: $CARGAN_HOME, else MyDrive/cargan when Drive is
#                 mounted in Colab, else ~/cargan)
#
# Rerunning the same sweep resumes each run from its newest checkpoint (same run folders).
# In Colab, from a clone on Drive:  !bash /content/drive/MyDrive/cargan/cargan_tf-repo/scripts/sweep.sh
# (mount Drive and install cargan_tf first: run any notebook's first cells once).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=False
what=presets
epochs=()
home=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=True ;;
    --what) what="$2"; shift ;;
    --epochs) epochs=(-p epochs "$2"); shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) home="$1" ;;
  esac
  shift
done
if [ -z "$home" ]; then
  if [ -n "${CARGAN_HOME:-}" ]; then home="$CARGAN_HOME"
  elif [ -d /content/drive/MyDrive ]; then home=/content/drive/MyDrive/cargan
  else home="$HOME/cargan"; fi
fi
papermill=papermill
[ -x .venv/bin/papermill ] && papermill=.venv/bin/papermill
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"  # the kernels inherit it

suffix=""
[ "$smoke" = True ] && suffix="-smoke"  # smoke runs are different runs: never mix them
sweep="$home/sweeps/$what$suffix"
mkdir -p "$sweep"

run() {  # run_name, then extra papermill arguments
  local name="$1"; shift
  echo "== $name -> $home/runs/$name"
  "$papermill" notebooks/02_train_dcgan.ipynb "$sweep/$name.ipynb" -k python3 --cwd notebooks \
    --no-progress-bar -p home "$home" -p smoke "$smoke" -p run_name "$name" ${epochs[@]+"${epochs[@]}"} "$@"
}

case "$what" in
  presets)
    for preset in quick32 aim64 dcgan64; do
      run "sweep-$preset$suffix" -p preset "$preset" -p dataset toycars
    done ;;
  lr)
    for lr in 1e-4 2e-4 4e-4; do
      run "sweep-quick32-lr$lr$suffix" -p preset quick32 -p lr_d "$lr" -p lr_g "$lr"
    done ;;
  *) echo "--what must be presets or lr, not $what" >&2; exit 2 ;;
esac
echo "executed notebooks: $sweep"
echo "compare: $home/runs/sweep-*$suffix/plots/losses.png and real_vs_fake.png"
