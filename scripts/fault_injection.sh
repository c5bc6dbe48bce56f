#!/usr/bin/env bash
# Fault injection (run by hand, not by CI): trains `tiny` GAN-INT-CLS on
# shapes once without interruption, then the same run again while killing it
# with SIGKILL at random moments (in the text-encoder phase, between steps,
# during checkpoint writes, in the style-encoder phase), resuming
# each time with the same command plus --resume. Passes when the final
# weights of both runs are equal bit for bit (the SHA-256 of every tensor
# that each checkpoint carries) and no temporary file is left behind.
#
#   scripts/fault_injection.sh [KILLS] [WORKDIR]      (default 20, a temp dir)
#
# T2I (default target/release/t2i) is the binary; SEED picks the kill times.
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${1:-20}
WORK=${2:-$(mktemp -d -t t2i-faults.XXXXXX)}
T2I=${T2I:-target/release/t2i}
SEED=${SEED:-1}
[ -x "$T2I" ] || { echo "error: $T2I not found (cargo build --release)" >&2; exit 1; }
export T2I_LOG=warn OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$WORK"

ARGS=(train --steps 300 --checkpoint-every 10 --keep-checkpoints 2 --text-steps 100
      --style-steps 100 --train-size 200 --batch-size 16 --eval-samples 0
      --sample-every 100 --device cpu --seed 7)

# the SHA-256 of a checkpoint's tensors, from its safetensors header
tensor_sha() {
    python3 - "$1" <<'EOF'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    print(json.loads(f.read(n))["__metadata__"]["t2i.sha256"])
EOF
}

rm -rf "$WORK/ref" "$WORK/run"
echo "reference run (uninterrupted) in $WORK/ref"
start=$(date +%s)
"$T2I" "${ARGS[@]}" --out "$WORK/ref" > "$WORK/ref.log" 2>&1
took=$(( $(date +%s) - start ))
echo "  took ${took} s"

echo "faulty runs in $WORK/run: $KILLS kills"
RANDOM=$SEED
rm -rf "$WORK/run"
resume=()
finished=0
check() {  # a run that got to its end must hold the reference weights
    local got
    got=$(tensor_sha "$WORK/run/checkpoints/last.safetensors")
    [ "$got" = "$want" ] || { echo "FAIL: finished run $finished has weights $got"; exit 1; }
}
want=$(tensor_sha "$WORK/ref/checkpoints/last.safetensors")
i=0
while [ "$i" -lt "$KILLS" ]; do
    # kill times spread over the whole run (text encoder, steps, checkpoint
    # writes, style encoder), measured from this process's start
    ms=$(( (RANDOM * 32768 + RANDOM) % (took * 1000 + 1) ))
    "$T2I" "${ARGS[@]}" --out "$WORK/run" "${resume[@]}" > "$WORK/attempt.log" 2>&1 &
    pid=$!
    sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
    if kill -9 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || true
        i=$((i + 1))
        step=$(python3 -c "import json,sys;d=json.load(open(sys.argv[1]));print(max((c['step'] or 0) for c in d['checkpoints']))" \
            "$WORK/run/checkpoints/manifest.json" 2>/dev/null || echo "none yet")
        echo "  kill $i at ${ms} ms after the (re)start; newest checkpoint: step $step"
        resume=(--resume)
    else
        wait "$pid" || { echo "FAIL: a resumed run exited with an error:"; tail -5 "$WORK/attempt.log"; exit 1; }
        finished=$((finished + 1))
        check
        echo "  the run reached its end before the kill at ${ms} ms: weights equal the reference; starting a new faulty run"
        rm -rf "$WORK/run"
        resume=()
    fi
done
echo "final resume to the end"
"$T2I" "${ARGS[@]}" --out "$WORK/run" "${resume[@]}" > "$WORK/final.log" 2>&1 \
    || { echo "FAIL: the final resume failed:"; tail -5 "$WORK/final.log"; exit 1; }

left=$(find "$WORK/run" -name '.*.tmp-*' | wc -l)
got=$(tensor_sha "$WORK/run/checkpoints/last.safetensors")
echo "reference weights  $want"
echo "final weights      $got   ($KILLS kills; $finished earlier faulty run(s) also reached the end with equal weights)"
echo "temporary files left: $left"
if [ "$want" = "$got" ] && [ "$left" = 0 ]; then
    echo "PASS: $KILLS kills, nothing lost, final weights equal bit for bit"
else
    echo "FAIL"
    exit 1
fi
