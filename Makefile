# One name per task; `make help` lists them.
.PHONY: help build test run lint fmt bench-all bench bench-engines bench-grpc bench-failover peer engines slow containers golden proto mutants

help: ## list the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

build: ## build everything (release)
	scripts/build.sh

test: ## build and run every check and test
	scripts/test.sh

run: ## the main job: build, then the whole stack with a demo bot streaming a real series
	scripts/run.sh

lint: ## formatting, clippy and ruff
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	scripts/setup.sh
	.venv/bin/ruff check python-layer tests/python scripts
	.venv/bin/ruff format --check python-layer tests/python scripts

fmt: ## format the code
	cargo fmt --all
	.venv/bin/ruff format python-layer tests/python scripts

bench-all: ## every benchmark, tables regenerated into docs/BENCHMARKS.md (needs ../shared/data)
	scripts/bench.sh

bench: ## throughput and memory of the core (needs ../shared/data)
	scripts/bench_core.sh

bench-engines: ## Python engine and native binding against the pure-Rust core (needs ../shared/data)
	scripts/setup.sh
	.venv/bin/python scripts/bench_engines.py

bench-grpc: ## both servers over gRPC: Analyze of 1M bars, stream ack latency, pipelined bars/s
	scripts/setup.sh
	.venv/bin/python scripts/bench_grpc.py

bench-failover: ## the monitor: time to the first answer after a crash and a hang, latency it adds
	scripts/setup.sh
	.venv/bin/python scripts/bench_failover.py

engines: ## both engines on every file of ../shared/data: do they agree?
	scripts/setup.sh
	.venv/bin/python scripts/check_engines.py

slow: ## the slow tests: 10,000 differential examples, 1,000 streams, the fault suite at 10,000 bars
	scripts/setup.sh --tests
	cargo build --profile ci --locked -p trading-engine --bin trading-engine
	.venv/bin/python -m pytest -q -m "slow and not containers"

containers: ## the images built with podman and both compose stacks run, a crash mid-stream (long)
	scripts/setup.sh --tests
	scripts/containers.sh all
	.venv/bin/python -m pytest -q -p no:cacheprovider -m containers tests/python/test_containers.py

peer: ## compare with chan.py's outputs in ../shared/reference/chanpy
	cargo build --release -p trading-engine
	python3 scripts/peer_check.py

mutants: ## mutation testing of the incremental tail's fast paths (cargo-mutants; long)
	scripts/mutants.sh

golden: ## regenerate the expected documents of tests/golden (hand-derived checks still apply)
	GOLDEN_UPDATE=1 cargo test -p chan-core --test golden

proto: ## regenerate the Python gRPC code (python-layer/trading_system/proto) from proto/trading.proto
	scripts/setup.sh
	scripts/gen_proto.sh
