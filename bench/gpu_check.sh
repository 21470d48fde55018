#!/usr/bin/env bash
# The prepared GPU check: one command, about 8 minutes on one large GPU (planned for an H200).
#
#   bench/gpu_check.sh              # on the GPU machine, from the repository root
#   bench/gpu_check.sh --dry-run    # here, on the CPU: the same entry points with tiny models
#
# Needs torch (CUDA build), transformers and accelerate on the machine; no internet. Packages it
# lacks (bitsandbytes, peft, datasets, nvidia-ml-py, …) are installed offline from .whl/, which
# bench/gpu_wheels.sh fills on a machine with PyPI and which travels with the repository copy.
#
# What it does (each step time-limited; a failing step does not stop the others):
#  1. installs missing wheels from .whl/ (pip --no-index), prints GPU / torch / CUDA facts;
#  2. builds random-initialised models at real sizes from the model cards (Qwen2.5 0.5B, 1.5B, 3B,
#     7B and Llama-3.2-1B, real vocabularies) and padded text data;
#  3. trains each a few steps through the real worker over a grid (batch x max_length x LoRA r x
#     checkpointing, bf16 and fp16) → bench/vram_calibration.csv: the worker's estimate, torch's
#     peak reserved, NVML's peak for the worker process, error %, tokens/s;
#  4. fp16 run (loss-scaler skips must not stop it), an out-of-memory run (failed, batch hint,
#     memory event at the OOM), chat with a checkpoint during training, export --merge (must not
#     touch the GPU), `tui-tuner demo` on the GPU;
#  5. bench/loss_memory.py in its CUDA mode, when that script exists.
# Outputs: bench/vram_calibration.csv, and in $OUT (default bench/gpu_check_out/) gpu_check.log, a
# copy of the CSV and each run's events.jsonl / status.json / train.log (runs/). The large things
# — built models (~28 GB), checkpoints, adapters — stay in $WORK (default /tmp/tt-gpu-check), which
# is removed at the end unless KEEP_WORK=1.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
PY=${PYTHON:-python}
OUT=${OUT:-$REPO/bench/gpu_check_out}
mkdir -p "$OUT"
LOG=$OUT/gpu_check.log
: > "$LOG"
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
WORK=${WORK:-${TMPDIR:-/tmp}/tt-gpu-check}
mkdir -p "$WORK"
export TUI_TUNER_HOME=$WORK/home
MODELS_DIR=$WORK/models
CSV=$REPO/bench/vram_calibration.csv
BUDGET=${GRID_BUDGET:-180}   # seconds for the calibration grid (the other steps take about 4-5 minutes)
TINY=()
if [ $DRY = 1 ]; then
  export CUDA_VISIBLE_DEVICES=""   # the dry run never touches a GPU, even where there is one
  TINY=(--tiny)
  CSV=$OUT/vram_calibration.dry-run.csv
  BUDGET=${GRID_BUDGET:-600}
  SLOW=3   # the CPU is much slower than the GPU: longer limits
fi
SLOW=${SLOW:-1}
T0=$(date +%s)
FAILS=0
say() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG"; }
step() {  # step NAME SECONDS CMD...: run with a time limit, log everything, count failures
  local name=$1 limit=$(( $2 * SLOW )); shift 2
  say "== $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG" \
    | grep --line-buffered -E '^(PASS|FAIL|SKIP)|^[a-z0-9.-]+ b=|^estimate vs|^wrote|built in|Error|error:'
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 124 ] && say "!! $name ran out of its ${limit}s"
  if [ "$rc" != 0 ]; then FAILS=$((FAILS + 1)); say "!! $name failed (exit $rc; see $LOG)"; fi
}

# 1. packages ------------------------------------------------------------------------------------
say "== packages"
for pair in bitsandbytes:bitsandbytes peft:peft datasets:datasets pynvml:nvidia-ml-py platformdirs:platformdirs \
            yaml:PyYAML psutil:psutil; do
  mod=${pair%%:*} pkg=${pair#*:}
  if ! $PY -c "import $mod" 2>/dev/null; then
    if [ -d .whl ]; then
      say "installing $pkg from .whl/ (offline)"
      $PY -m pip install --quiet --no-index --find-links .whl "$pkg" >>"$LOG" 2>&1 || say "!! could not install $pkg from .whl/"
    else
      say "!! $mod is missing and there is no .whl/ folder (fill it with bench/gpu_wheels.sh where PyPI is reachable)"
    fi
  fi
done
$PY - <<'EOF' 2>&1 | tee -a "$LOG"
import torch, transformers, importlib
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), transformers {transformers.__version__}")
for m in ("accelerate", "bitsandbytes", "peft", "datasets"):
    try:
        print(f"{m} {importlib.import_module(m).__version__}")
    except Exception as e:
        print(f"{m}: MISSING ({e})")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"GPU {p.name}, {p.total_memory / 2**30:.1f} GiB, compute capability {p.major}.{p.minor}, "
          f"{torch.cuda.device_count()} visible")
else:
    print("no CUDA device visible to torch")
from tui_tuner.gpu import list_gpus
for g in list_gpus():
    print(f"NVML: {g.index} {g.name} {g.uuid} {g.total_gib:.1f} GiB total, {g.free_gib:.1f} GiB free")
EOF
if [ $DRY = 0 ] && ! $PY -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  say "!! torch cannot use a GPU here: use --dry-run on a machine without one"; exit 2
fi

# 2. models and data ------------------------------------------------------------------------------
step "build random-init models at real sizes" 150 $PY bench/gpu_calibrate.py build --dir "$MODELS_DIR" ${TINY[@]+"${TINY[@]}"}

# 3. the calibration grid through the worker -----------------------------------------------------------
step "calibration grid (budget ${BUDGET}s)" $((BUDGET + 120)) $PY bench/gpu_calibrate.py grid --dir "$MODELS_DIR" \
  --out "$CSV" --budget "$BUDGET" --fresh ${TINY[@]+"${TINY[@]}"}

# 4. the other GPU paths ------------------------------------------------------------------------------
step "fp16 path" 150 $PY bench/gpu_check_steps.py fp16 --dir "$MODELS_DIR"
step "out of memory" 120 $PY bench/gpu_check_steps.py oom --dir "$MODELS_DIR"
step "chat during training" 240 $PY bench/gpu_check_steps.py chat --dir "$MODELS_DIR"
step "export --merge stays off the GPU" 180 $PY bench/gpu_check_steps.py export --dir "$MODELS_DIR"
step "demo on the GPU" 240 $PY bench/gpu_check_steps.py demo --timeout 210 ${TINY[@]+"${TINY[@]}"}

# 5. loss memory (chunked / liger loss), when that bench exists -------------------------------------------
if [ -f bench/loss_memory.py ]; then
  HELP=$($PY bench/loss_memory.py --help 2>/dev/null || true)
  LM_ARGS=()
  if [ $DRY = 0 ]; then  # its CUDA mode, under whichever flag it has
    if grep -q -- "--cuda" <<<"$HELP"; then LM_ARGS=(--cuda)
    elif grep -q -- "--device" <<<"$HELP"; then LM_ARGS=(--device cuda); fi
  fi
  step "loss memory ${LM_ARGS[*]:-}" 240 $PY bench/loss_memory.py ${LM_ARGS[@]+"${LM_ARGS[@]}"}
fi

cp "$CSV" "$OUT/" 2>/dev/null
mkdir -p "$OUT/runs"
for r in "$TUI_TUNER_HOME"/runs/*/; do
  [ -d "$r" ] || continue
  mkdir -p "$OUT/runs/$(basename "$r")"
  cp "$r"/events.jsonl "$r"/status.json "$r"/train.log "$r"/config.yaml "$OUT/runs/$(basename "$r")/" 2>/dev/null
done
[ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
say "done in $(( $(date +%s) - T0 )) s: $FAILS step(s) failed; CSV: $CSV; log: $LOG"
[ $FAILS = 0 ]
