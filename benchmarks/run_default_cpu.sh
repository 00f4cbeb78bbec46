#!/usr/bin/env bash
# The default configuration, DownscaleConfig(), on the demo pair (JJA) on a CPU, in as many
# sittings as it takes: every fit writes its training state after each round
# (fit(..., state_dir=)), so the script, stopped anywhere and started again, goes on where it
# was; each step whose result is there already is skipped.
#
#   bash benchmarks/run_default_cpu.sh            # CACHE, STATE, OUT and THREADS may be set
#
# 1. the DDPM, fitted as fit() does (validation, spread calibration), scored on the test days
#    beside bicubic and bias-corrected bicubic (bench_skill.py: 8 DDIM-10 members);
# 2. the U-Net on the DDPM's stage A (fit(pretrained=): the same training), scored the same way;
# 3. the DDPM's 30-day pseudo out-of-data rollout (bench_rollout_skill.py --model);
# 4. the 8-member ensemble figures beside the U-Net (bench_ensembles.py --predictions: the
#    members step 1 sampled, spread calibration as fit() ships it, scored, not sampled again).
#
# Timed on two cores of the development machine (2-core EPYC, float32), about six hours in
# all: stage A 2 818 steps a round, 8-9 minutes a round, stopped early after 15 rounds; the
# DDPM's stage B 30 epochs of 88 steps, 146 s an epoch; its 18 test days with 8 members 21
# minutes; the U-Net's stage B about 2 minutes an epoch; the rollout about 18 minutes.
# Figures in the training, prediction and rollout guides.
set -u
cd "$(dirname "$0")/.."
C=${CACHE:-.bench-cache/default}
S=${STATE:-.bench-cache/default-state}
O=${OUT:-.bench-out/default}
T=${THREADS:-2}
PY=${PYTHON:-python3}
mkdir -p "$C" "$S" "$O"
export XDOWNSCALE_PROGRESS=0 PYTHONUNBUFFERED=1
log() { echo "[$(date -u +%H:%M:%S)] $*"; }
DDPM=$C/demo_JJA_ddpm_residual_default_seed0
skill() {  # model [extra bench_skill args]
  local model=$1; shift
  [ -s "$O/skill_demo_$model.csv" ] && { log "$model: scored already ($O/skill_demo_$model.csv)"; return 0; }
  log "$model: fitting (resumes from $S) and scoring"
  $PY benchmarks/bench_skill.py --config default --beds demo --models "$model" --seeds 0 \
    --as-shipped --verbose --threads "$T" --cache "$C" --state-dir "$S" \
    --out "$O/skill_demo_$model.csv" --save-predictions "$O/predictions" "$@" \
    >>"$O/$model.log" 2>&1 || { log "$model failed"; exit 1; }
}
skill ddpm
skill unet --stage-a-from ddpm
if [ ! -s "$O/rollout/done" ]; then
  log "30-day rollout"
  $PY benchmarks/bench_rollout_skill.py --model "$DDPM" --days 30 --out "$O/rollout" \
    --threads "$T" >"$O/rollout.log" 2>&1 && date >"$O/rollout/done" || { log "rollout failed"; exit 1; }
fi
if [ ! -s "$O/ensembles.done" ]; then
  log "ensembles"
  $PY benchmarks/bench_ensembles.py --config default --predictions "$O/predictions" \
    >"$O/ensembles.log" 2>&1 \
    && date >"$O/ensembles.done" || { log "ensembles failed"; exit 1; }
fi
log "done: $O"
