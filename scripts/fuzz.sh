#!/usr/bin/env bash
# Coverage-guided fuzzing of t2i's input readers (cargo-fuzz / libFuzzer).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each target (default: all five) for SECONDS (default 600) from the
# corpus that fuzz/examples/seeds.rs writes, plus the official .pth files of
# ../shared/reference and checkpoints of two tiny runs. Installs the nightly
# toolchain and cargo-fuzz when missing. Logs: fuzz/logs/<target>.log; a crash
# leaves its input in fuzz/artifacts/<target>/ and the script exits non-zero.
# Run by hand (not by CI). Uses one core per target, one target at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-600}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(caption_text config_set pth_reader checkpoint_loader dataset_index)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
make -s setup

export LD_LIBRARY_PATH="$ROOT/.libtorch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cd fuzz
mkdir -p logs corpus
cargo +nightly fuzz build -s none -O
cargo run -q --release --example seeds -- corpus

# official .pth files (zip and legacy) when the reference fixtures are here
REF=${T2I_REFERENCE:-$ROOT/../shared/reference}
if [ -d "$REF" ]; then
    mkdir -p corpus/pth_reader
    for f in "$REF"/AttnGAN/RNN_ENCODER_small/weights*.pth; do
        cp "$f" "corpus/pth_reader/ref-$(basename "$f")"
    done
fi

# checkpoints of real tiny runs (narrow networks, one step), as written and
# without their checksum so that mutated configs reach the generator
if [ ! -f corpus/checkpoint_loader/run-gawwn ]; then
    (cd "$ROOT" && cargo build -q --release -p t2i-cli)
    RUNS=$(mktemp -d)
    for m in gan-int-cls gawwn; do
        "$ROOT/target/release/t2i" train --model "$m" --out "$RUNS/$m" --steps 1 --ngf 4 --ndf 4 \
            --train-size 64 --batch-size 4 --text-steps 1 >/dev/null 2>&1
        cp "$RUNS/$m/checkpoints/last.safetensors" "corpus/checkpoint_loader/run-$m"
    done
    cargo run -q --release --example seeds -- corpus --strip-checksum corpus/checkpoint_loader/run-*
    rm -rf "$RUNS"
fi

status=0
for t in "${TARGETS[@]}"; do
    dict=()
    [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
    echo "== $t: ${SECS}s"
    if ! cargo +nightly fuzz run -s none -O "$t" -- -max_total_time="$SECS" \
        -rss_limit_mb=6144 -timeout=60 -print_final_stats=1 "${dict[@]}" >"logs/$t.log" 2>&1; then
        status=1
        echo "   CRASH: see fuzz/logs/$t.log and fuzz/artifacts/$t/"
    fi
    grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec|^stat::peak_rss_mb' "logs/$t.log" | sed 's/^/   /' || true
    echo "   corpus: $(ls "corpus/$t" | wc -l) inputs"
done
exit $status
