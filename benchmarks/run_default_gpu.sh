#!/usr/bin/env bash
# The default configuration, DownscaleConfig(), on one GPU machine: the fits and checks a CPU
# cannot afford (a demo-pair season is some 60 000 optimizer steps; hours a fit on 2 cores).
#
#   OUT=DIR bash benchmarks/run_default_gpu.sh           # on a machine with a CUDA GPU
#   OUT=DIR bash benchmarks/run_default_gpu.sh --tiny    # the same jobs with tiny networks
#                                                        # and budgets: checks the script on a CPU
#
# After a quick CUDA smoke test (a small fit, predict, save/load, a short rollout), these run
# side by side, each its own process on the one GPU, all stopped at DEADLINE seconds (default
# 540) so that what finished comes back:
#
# * the demo pair (JJA), DDPM and U-Net, fitted as fit() does (validation, spread
#   calibration): bench_skill.py's scores beside bicubic and bias-corrected bicubic; as soon
#   as the DDPM is saved its 30-day pseudo out-of-data rollout (bench_rollout_skill.py --model)
#   and, once the U-Net is too, the ensemble figures (bench_ensembles.py --config default
#   --calibrate), each its own process;
# * the base and short-record test-beds, DDPM and U-Net (bench_skill.py --config default);
# * one full A1 day with the default configuration (bench_predict_day.py).
#
# BEDS="..." names other test-beds (BEDS= none), PREDICT_DAY=0 skips the A1 day, REUSE=1 fits
# the demo U-Net after the DDPM on the DDPM's stage A (fit(pretrained=); the same training, so
# the GPU does it once), WORK=DIR keeps the fitted models (a rerun on the same machine loads
# them instead of fitting again).
#
# Measured on one H200 (seven processes at first, two at the end): base and short-record fits
# took 131-192 s each; a demo season's stage A is 2 818 steps an epoch at 13.5 ms a step and
# runs 11-13 epochs, so a demo model is about 10 minutes, more than DEADLINE=515 allowed.
#
# Everything goes to $OUT/results.tgz (logs, CSVs, figures, every training log); the fitted
# demo DDPM as $OUT/ddpm_demo_JJA_default.tgz.part-* (join with cat; weights rounded to float16
# to fit the way back), so that it can be evaluated further on a CPU.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/xds-default-gpu}
W=${WORK:-/tmp/xds-default-work}
C=$W/cache
L=$W/logs
DEADLINE=${DEADLINE:-540}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$C" "$L"
export XDOWNSCALE_PROGRESS=0 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
TINY=0
SET=()
if [ "${1:-}" = "--tiny" ]; then
  TINY=1
  SET=(--set "small_widths=(8,16,32)" "large_widths=(8,16,32)" small_epochs=1 epochs=1
       small_min_steps=0 small_max_steps=5 min_steps=5 max_steps=5 small_max_days=40)
fi
T0=$(date +%s)
left() { echo $((DEADLINE - ($(date +%s) - T0))); }
log() { echo "[$(($(date +%s) - T0)) s] $*"; }

log "python $($PY -c 'import sys; print(sys.version.split()[0])'), torch $($PY -c 'import torch; print(torch.__version__, torch.cuda.is_available())')"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 >"$L/gpu_utilisation.csv" 2>&1 &
fi

# -- smoke test: every path the jobs take, small, on the device the jobs will use ------------
log "smoke test"
if ! timeout 150 $PY - >"$L/smoke.log" 2>&1 <<'EOF'
import sys, tempfile, time
import pandas as pd
sys.path.insert(0, "tests")
import testbeds
from xdownscale import DownscaleConfig, Downscaler
from xdownscale.predict.evaluation import pseudo_start
t = time.perf_counter()
coarse, fine, elev = testbeds.make_pair("short-record", seed=0)
cfg = DownscaleConfig.fast(small_min_steps=20, min_steps=20, max_steps=20, small_epochs=1,
                           epochs=1, verbose=False)
est = Downscaler(cfg, model="ddpm", seasons=["JJA"]).fit(coarse, fine, elev)
print("device", est.device_, next(est.modules_["JJA"].parameters()).device,
      f"fit {time.perf_counter() - t:.1f} s")
days = est.test_days_["JJA"][:2]
a = est.predict(coarse.sel(time=days), history=fine, members=2, keep_members=True)
with tempfile.TemporaryDirectory() as d:
    est.save(d)
    back = Downscaler.load(d)
    b = back.predict(coarse.sel(time=days), history=fine, members=2, keep_members=True)
print("save/load max |diff|", float(abs(a["DUEXTTAU"] - b["DUEXTTAU"]).max()))
start = pseudo_start(est, pd.DatetimeIndex(fine["time"].values), "JJA", 3)
r = est.evaluate_rollout(coarse, fine, start=start, days=3, members=1)
print(type(r).__name__, "rollout evaluated;", f"total {time.perf_counter() - t:.1f} s")
EOF
then
  log "smoke test FAILED"; cat "$L/smoke.log"; tar czf "$OUT/results.tgz" -C "$W" logs; exit 3
fi
cat "$L/smoke.log"

# -- the jobs -----------------------------------------------------------------------------
tag=$($PY -c "import sys; sys.path.insert(0, 'benchmarks'); from _common import parse_overrides; print(parse_overrides(sys.argv[1:])[1])" "${SET[@]:1}")
skill() {  # name bed model [extra bench_skill args]
  local name=$1 bed=$2 model=$3; shift 3
  $PY benchmarks/bench_skill.py --config default --beds "$bed" --models "$model" --seeds 0 \
    --members 8 --cache "$C" --out "$W/skill_$name.csv" --verbose --threads 2 "${SET[@]}" "$@"
}
DDPM=$C/demo_JJA_ddpm_residual_default${tag}_seed0
UNET=$C/demo_JJA_unet_residual_default${tag}_seed0

saved() {  # wait for a fitted model's folder (save() moves it into place whole)
  while [ ! -e "$1/manifest.json" ] && [ "$(left)" -gt 0 ]; do sleep 5; done
  [ -e "$1/manifest.json" ]
}
skill demo_ddpm demo ddpm --as-shipped >"$L/demo_ddpm.log" 2>&1 &
PIDS=($!)
if [ "${REUSE:-0}" = 1 ]; then  # the U-Net takes the DDPM's stage A (the same training)
  ( saved "$DDPM" && skill demo_unet demo unet --as-shipped --stage-a-from ddpm
  ) >"$L/demo_unet.log" 2>&1 &
else
  skill demo_unet demo unet --as-shipped >"$L/demo_unet.log" 2>&1 &
fi
PIDS+=($!)
( saved "$DDPM" && log "30-day rollout" &&
  $PY benchmarks/bench_rollout_skill.py --model "$DDPM" --days 30 --out "$W/rollout" --threads 2
) >"$L/demo_rollout.log" 2>&1 &
PIDS+=($!)
( saved "$DDPM" && saved "$UNET" && log "ensembles" &&
  $PY benchmarks/bench_ensembles.py --config default --skill-cache "$C" --calibrate --threads 2 \
    --settings ddim:10:0:posthoc,ddim:10:1:posthoc "${SET[@]}"
) >"$L/demo_ensembles.log" 2>&1 &
PIDS+=($!)
for bed in ${BEDS-base short-record}; do
  for model in ddpm unet; do
    skill "${bed}_$model" "$bed" "$model" >"$L/${bed}_$model.log" 2>&1 &
    PIDS+=($!)
  done
done
if [ $TINY = 0 ] && [ "${PREDICT_DAY:-1}" = 1 ]; then
  $PY benchmarks/bench_predict_day.py --cache "$C" --threads 2 >"$L/predict_day.log" 2>&1 &
  PIDS+=($!)
fi
running() { local n=0 p; for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && n=$((n + 1)); done; echo $n; }
log "jobs started: ${#PIDS[@]}"
while [ "$(running)" -gt 0 ] && [ "$(left)" -gt 0 ]; do sleep 5; done
log "stopping: $(running) job(s) still running"
pkill -TERM -f "benchmarks/bench_" 2>/dev/null
pkill -f "nvidia-smi --query-gpu" 2>/dev/null
sleep 3

# -- what comes back ------------------------------------------------------------------------
for d in "$C"/*/; do  # every training log and validation table, not the weights
  [ -L "${d%/}" ] && continue
  n=$(basename "$d"); mkdir -p "$W/fits/$n"
  cp "$d"/*.csv "$d"/*.json "$d"/*.txt "$W/fits/$n/" 2>/dev/null
done
tar czf "$OUT/results.tgz" -C "$W" $(cd "$W" && ls -d logs fits rollout skill_*.csv 2>/dev/null)
if [ -e "$DDPM/estimator.json" ]; then  # weights in float16 for the way back (half the bytes)
  rm -rf "$W/ddpm_demo_JJA_default" && cp -r "$DDPM" "$W/ddpm_demo_JJA_default"
  $PY - "$W/ddpm_demo_JJA_default" <<'EOF2'
import json, sys, pathlib, torch
from safetensors.torch import load_file, save_file
from xdownscale.estimator.checkpoint import _sha256
path = pathlib.Path(sys.argv[1])
manifest = json.loads((path / "manifest.json").read_text())
for f in path.glob("[A-Z]*.safetensors"):  # season weights only (elevation stays float32)
    t = load_file(str(f))
    save_file({k: v.half() if v.dtype == torch.float32 else v for k, v in t.items()}, str(f))
    manifest["files"][f.name] = _sha256(f)  # a deliberate change: the checksum follows it
(path / "manifest.json").write_text(json.dumps(manifest, indent=1))
EOF2
  tar czf - -C "$W" ddpm_demo_JJA_default | split -b 15M - "$OUT/ddpm_demo_JJA_default.tgz.part-"
fi
for f in "$L"/*.log; do
  echo "===== $(basename "$f")"; grep -v "round [0-9]*:" "$f" | tail -n 12
done
log "done"
