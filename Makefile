# Celeriac: thin wrappers around scripts/. See scripts/broker.sh for the test broker.
SHELL := /bin/bash

.PHONY: run test chaos fuzz bench docs bootstrap broker-start broker-stop clean

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

bench: bootstrap broker-start
	swift build -c release --product celeriac-bench
	swift build -c release --product celeriac-demo
	bash scripts/bench.sh

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
