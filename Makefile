# Celeriac: thin wrappers around scripts/. See scripts/broker.sh for the test broker.
SHELL := /bin/bash

.PHONY: run test chaos fuzz bench bench-targets bench-build docs bootstrap broker-start broker-stop clean

run: bootstrap broker-start
	swift build -c release --product celeriac-demo
	scripts/quickstart.sh

test: bootstrap
	scripts/test.sh
	scripts/check-docs.sh
	scripts/chaos.sh --short
	FUZZ_RUNS=$${FUZZ_RUNS:-100000} scripts/fuzz.sh $${FUZZ_SECONDS:-30}

# Multi-host fault injection (network namespaces; needs root): the full workloads on a release build.
# See Tests/Chaos/README.md; `scripts/chaos.sh --short [SCENARIO...]` is the quick form.
chaos: bootstrap
	scripts/chaos.sh

# libFuzzer on the task decoder, the crontab parser and the broker URL parser (see Fuzz/README.md).
fuzz:
	scripts/fuzz.sh $${FUZZ_SECONDS:-60}

bench: bootstrap broker-start bench-build
	bash scripts/bench.sh

# Issue #23's targets, RUNS runs (default 5) of each same-run ratio, and a table of their medians against the bounds.
bench-targets: bootstrap broker-start bench-build
	.run/venv/bin/python bench/targets.py --runs $${RUNS:-5}

# The release builds the benchmarks run, and celeriac-demo linked as Deploy/Dockerfile links it (for the memory figures).
bench-build:
	swift build -c release --product celeriac-bench
	swift build -c release --product celeriac-demo
	swift build -c release --product celeriac-demo --static-swift-stdlib --scratch-path .build-static

# API documentation (DocC) of the library modules into .build/docs/Celeriac.doccarchive (check-docs builds it too).
docs:
	scripts/docs/docc.sh

bootstrap:
	scripts/bootstrap.sh

broker-start:
	scripts/broker.sh start

broker-stop:
	scripts/broker.sh stop

clean:
	swift package clean
	scripts/broker.sh destroy
