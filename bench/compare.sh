#!/usr/bin/env bash
# t2i against its PyTorch twin (bench/torch_reference/), in alternating
# rounds on this machine: the same libtorch (PyTorch 2.13's), the same
# threads, a fixed in-memory batch on both sides; prints each engine's median
# over the rounds (of the per-round medians) and t2i / PyTorch.
#
#   bench/compare.sh [--rounds 3] [--batch-size 8] [--repeats 3] [--precision fp32|bf16]
#
# The twin runs in the project's fixture venv (.venv-fixtures, torch==2.13.0:
# created here when missing); `cargo build --release` first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=3 batch=8 repeats=3 precision=fp32
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --batch-size) batch=$2; shift 2 ;;
        --repeats) repeats=$2; shift 2 ;;
        --precision) precision=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
venv=$root/.venv-fixtures
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet torch==2.13.0 safetensors numpy
fi
t2i=${T2I:-$root/target/release/t2i}
[ -x "$t2i" ] || { echo "build t2i first: cargo build --release" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
for r in $(seq "$rounds"); do
    echo "round $r of $rounds" >&2
    "$t2i" bench --model stackgan --preset paper --batch-size "$batch" --repeats "$repeats" \
        --precision "$precision" --json "$tmp/t2i-$r.json" > /dev/null
    for s in 1 2; do
        "$venv/bin/python" "$root/bench/torch_reference/stackgan.py" bench --stage "$s" \
            --batch-size "$batch" --repeats "$repeats" --threads "$OMP_NUM_THREADS" > "$tmp/torch-$s-$r.json"
    done
done
"$venv/bin/python" - "$tmp" "$rounds" "$batch" "$precision" <<'PY'
import json, statistics, sys
tmp, rounds, batch, precision = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ours = [json.load(open(f"{tmp}/t2i-{r}.json")) for r in range(1, rounds + 1)]
rows = [("train iteration", "train_step"), ("generate batch 1", "generate_batch1"),
        ("generate batch 32", "generate_batch32")]
print(f"StackGAN paper, batch {batch}, t2i {precision} against PyTorch eager fp32, "
      f"median of {rounds} alternating rounds (ms)")
print(f"{'what':<34} {'t2i':>10} {'pytorch':>10} {'t2i/pytorch':>12}")
for s in (1, 2):
    theirs = [json.load(open(f"{tmp}/torch-{s}-{r}.json")) for r in range(1, rounds + 1)]
    for name, key in rows:
        a = statistics.median(o[s - 1][key]["median_ms"] for o in ours)
        b = statistics.median(t[key]["median_ms"] for t in theirs)
        print(f"{f'Stage-{s} {name}':<34} {a:>10.1f} {b:>10.1f} {a / b:>12.2f}")
PY
