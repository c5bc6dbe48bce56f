#!/usr/bin/env bash
# t2i against its PyTorch twin (bench/torch_reference/), in alternating
# rounds on this machine: the same libtorch (PyTorch 2.13's), the same
# threads, a fixed in-memory batch on both sides; prints each engine's median
# over the rounds (of the per-round medians), t2i / PyTorch, and the GFLOP of
# matrix products and convolutions each side counted (equal but for the
# upsampling convolutions of StackGAN and AttnGAN, which t2i computes as 2x2
# phase convolutions: 16 multiply-adds where the official code does 36).
#
#   bench/compare.sh [--model gan-int-cls|stackgan|attngan|all] [--preset paper|tiny]
#                    [--rounds 3] [--batch-size N] [--repeats 3]
#                    [--precision fp32|bf16]
#
# `paper` presets unless given (`tiny`: the StackGAN and AttnGAN twins build
# the official networks with t2i's rules for other image sides, and
# AttnGAN's trains through the DAMSM `tiny` small CNN); batch 8
# for GAN-INT-CLS and StackGAN and 4 for AttnGAN unless given. GAN-INT-CLS's
# twin first reproduces t2i's training step on t2i's own fixture (`t2i bench
# --twin-fixture`); StackGAN's and AttnGAN's reproduce the official fixtures
# (their `check`). The twin runs in the project's fixture venv
# (.venv-fixtures, torch==2.13.0 and torchvision 0.28 for AttnGAN's
# Inception-v3: created here when missing); `cargo build --release` first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model=all preset=paper rounds=3 batch= repeats=3 precision=fp32
while [ $# -gt 0 ]; do
    case $1 in
        --model) model=$2; shift 2 ;;
        --preset) preset=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --batch-size) batch=$2; shift 2 ;;
        --repeats) repeats=$2; shift 2 ;;
        --precision) precision=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
case $model in
    all) models="gan-int-cls stackgan attngan" ;;
    gan-int-cls | stackgan | attngan) models=$model ;;
    *) echo "unknown model $model (gan-int-cls, stackgan, attngan or all)" >&2; exit 2 ;;
esac
case $preset in
    paper | tiny) ;;
    *) [ "$models" = gan-int-cls ] ||
        { echo "--preset $preset: only GAN-INT-CLS's twin has it" >&2; exit 2; } ;;
esac
venv=$root/.venv-fixtures
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet torch==2.13.0 safetensors numpy
fi
"$venv/bin/python" -c "import torchvision" 2> /dev/null ||
    "$venv/bin/pip" install --quiet --no-deps torchvision==0.28.0 pillow
t2i=${T2I:-$root/target/release/t2i}
[ -x "$t2i" ] || { echo "build t2i first: cargo build --release" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
twin=$root/bench/torch_reference
for m in $models; do
    b=${batch:-$([ "$m" = attngan ] && echo 4 || echo 8)}
    echo "$b" > "$tmp/$m-batch"
    if [ "$m" = gan-int-cls ]; then
        "$t2i" bench --model "$m" --preset "$preset" --twin-fixture "$tmp/fixture" > /dev/null
        (cd "$twin" && "$venv/bin/python" gan_int_cls.py check --fixture "$tmp/fixture") > "$tmp/check.json" ||
            { cat "$tmp/check.json" >&2; echo "the twin does not reproduce t2i's step" >&2; exit 1; }
    fi
    for r in $(seq "$rounds"); do
        echo "$m: round $r of $rounds" >&2
        "$t2i" bench --model "$m" --preset "$preset" --batch-size "$b" --repeats "$repeats" \
            --precision "$precision" --json "$tmp/$m-t2i-$r.json" > /dev/null
        if [ "$m" = gan-int-cls ]; then
            (cd "$twin" && "$venv/bin/python" gan_int_cls.py bench --fixture "$tmp/fixture" \
                --batch-size "$b" --repeats "$repeats" --threads "$OMP_NUM_THREADS") > "$tmp/$m-torch1-$r.json"
        elif [ "$m" = stackgan ]; then
            for s in 1 2; do
                "$venv/bin/python" "$twin/stackgan.py" bench --stage "$s" --preset "$preset" --batch-size "$b" \
                    --repeats "$repeats" --threads "$OMP_NUM_THREADS" > "$tmp/$m-torch$s-$r.json"
            done
        else
            "$venv/bin/python" "$twin/attngan.py" bench --preset "$preset" --batch-size "$b" --repeats "$repeats" \
                --threads "$OMP_NUM_THREADS" > "$tmp/$m-torch1-$r.json"
        fi
    done
done
"$venv/bin/python" - "$tmp" "$rounds" "$precision" $models <<'PY'
import json, statistics, sys
tmp, rounds, precision, models = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
rows = [("train iteration", "train_step"), ("generate batch 1", "generate_batch1"),
        ("generate batch 16", "generate_batch16"), ("generate batch 32", "generate_batch32")]
print(f"t2i {precision} against PyTorch eager fp32, median of {rounds} "
      "alternating rounds (ms)")
print(f"{'what':<40} {'t2i':>10} {'pytorch':>10} {'t2i/pytorch':>12} {'GFLOP t2i':>10} "
      f"{'GFLOP pt':>10}")
gf = lambda v: "-" if v is None else f"{v:.2f}"
for m in models:
    batch = open(f"{tmp}/{m}-batch").read().strip()
    ours = [json.load(open(f"{tmp}/{m}-t2i-{r}.json")) for r in range(1, rounds + 1)]
    ours = [o if isinstance(o, list) else [o] for o in ours]
    for s in range(1, len(ours[0]) + 1):
        theirs = [json.load(open(f"{tmp}/{m}-torch{s}-{r}.json")) for r in range(1, rounds + 1)]
        label = {"stackgan": f"StackGAN Stage-{'I' * s}", "attngan": "AttnGAN",
                 "gan-int-cls": "GAN-INT-CLS"}[m] + f" {ours[0][s - 1]['preset']}"
        for name, key in rows:
            a = statistics.median(o[s - 1][key]["median_ms"] for o in ours)
            b = statistics.median(t[key]["median_ms"] for t in theirs)
            fa, fb = ours[0][s - 1][key].get("gflop"), theirs[0][key].get("gflop")
            print(f"{f'{label} {name}, batch {batch}':<40} {a:>10.1f} {b:>10.1f} {a / b:>12.2f} "
                  f"{gf(fa):>10} {gf(fb):>10}")
PY
