#!/usr/bin/env bash
# Rerun every fast() table of the docs (skill, 30-day rollouts, calibrated ensembles) for a
# candidate change of DownscaleConfig.fast(), given as configuration overrides.
#
#   SET="min_steps=600" CACHE=.bench-cache/min600 OUT=.bench-out/min600 \
#       bash benchmarks/run_fast_tables.sh [BED:SEED ...]
#
# A change to fast() is adopted only when every fit still beats bias-corrected bicubic by
# 0.05 R2 (log10) and is not worse in data units, the rollouts and the ensembles hold too: this
# runs all of them in two lanes of one torch thread each (two cores), riskiest pairs first
# (the small windows and short records). Per pair (a test-bed and a seed): bench_skill.py
# fits the DDPM and the U-Net (cached under CACHE, so a rerun or a later session picks up
# where this one stopped), then bench_rollout_skill.py rolls the DDPM out for 30 days and
# bench_ensembles.py scores its calibrated members. Logs: OUT/<bed>_seed<seed>.log.
# SET="" reruns today's fast() (the reference). The demo pair is slow (13-14 min a fit at
# one thread): DEMO=1 adds its four seasons (JJA with the ensembles) and the 30-day rollout
# of the lengthened pair at the end of the lanes; DEMO=only runs just those.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-python}
SET=${SET:-}
CACHE=${CACHE:-.bench-cache/fast}
OUT=${OUT:-.bench-out/fast}
mkdir -p "$CACHE" "$OUT"
set_args=()
[ -n "$SET" ] && set_args=(--set $SET)

pair() {  # bed seed
    local bed=$1 seed=$2 log="$OUT/${1}_seed${2}.log"
    {
        echo "== $bed seed $seed: skill ($(date +%T))"
        $PY benchmarks/bench_skill.py --beds "$bed" --seeds "$seed" --threads 1 \
            --cache "$CACHE" --out "$OUT/skill_${bed}_seed${seed}.csv" "${set_args[@]}"
        echo "== $bed seed $seed: rollout ($(date +%T))"
        $PY benchmarks/bench_rollout_skill.py --beds "$bed" --seed "$seed" --threads 1 \
            --skill-cache "$CACHE" "${set_args[@]}"
        echo "== $bed seed $seed: ensembles ($(date +%T))"
        $PY benchmarks/bench_ensembles.py --bed "$bed" --seed "$seed" --skill-cache "$CACHE" \
            --settings ddim:10:0:posthoc --calibrate "${set_args[@]}"
        echo "== $bed seed $seed: done ($(date +%T))"
    } > "$log" 2>&1
}

demo() {  # season; JJA adds the ensembles, "rollout" the lengthened pair's 30-day rollout
    if [ "$1" = rollout ]; then
        $PY benchmarks/bench_rollout_skill.py --cache "$CACHE" --threads 1 "${set_args[@]}" \
            > "$OUT/demo_rollout.log" 2>&1
        return
    fi
    {
        $PY benchmarks/bench_skill.py --beds demo --seasons "$1" --seeds 0 --threads 1 \
            --cache "$CACHE" --out "$OUT/skill_demo_$1.csv" "${set_args[@]}"
        if [ "$1" = JJA ]; then
            $PY benchmarks/bench_ensembles.py --skill-cache "$CACHE" --calibrate --days 8 \
                --settings ddim:10:0:posthoc "${set_args[@]}"
        fi
    } > "$OUT/demo_$1.log" 2>&1
}

if [ $# -gt 0 ]; then
    pairs=("$@")
else
    pairs=(short-record:0 long-small:0 short-record:1 long-small:1 base:0 base:1
           heavy-tails:0 heavy-tails:1 biased-noisy:0 biased-noisy:1 fast-wind:0
           fast-wind:1 point-sample:0 point-sample:1)
fi
lane() {  # every other pair, starting at $1
    local i
    for ((i = $1; i < ${#pairs[@]}; i += 2)); do
        pair "${pairs[i]%%:*}" "${pairs[i]##*:}"
    done
    if [ "${DEMO:-0}" = 1 ]; then
        if [ "$1" = 0 ]; then demo JJA; demo DJF; else demo rollout; demo MAM; demo SON; fi
    fi
}
[ "${DEMO:-0}" = only ] && pairs=() && DEMO=1
lane 0 & lane 1 & wait
echo "all done ($(date +%T)); logs in $OUT"
