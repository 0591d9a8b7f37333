# One name per task; `make help` lists them.
.PHONY: help build test run lint fmt bench peer golden

help: ## list the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

build: ## build everything (release)
	scripts/build.sh

test: ## build and run every check and test
	scripts/test.sh

run: ## the main job: analyze a bundled real series and print its structure
	scripts/run.sh

lint: ## formatting, clippy and ruff
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	scripts/setup.sh
	.venv/bin/ruff check python-layer tests/python
	.venv/bin/ruff format --check python-layer tests/python

fmt: ## format the code
	cargo fmt --all

bench: ## throughput and memory of the core (needs ../shared/data)
	scripts/bench_core.sh

peer: ## compare with chan.py's outputs in ../shared/reference/chanpy
	cargo build --release -p trading-engine
	python3 scripts/peer_check.py

golden: ## regenerate the expected documents of tests/golden (hand-derived checks still apply)
	GOLDEN_UPDATE=1 cargo test -p chan-core --test golden
