# Predictive maintenance pipeline. `make demo` and `make test` are the two
# commands a newcomer needs; both install and start what they use.

MODULES := pdmkit edge-agent ingest scorer trainer
STACK   := deployments/stack/stack.sh
GO      ?= go
# Test timeout per module; the whole suite is meant to stay under 25 minutes
# on 2 cores.
TEST_TIMEOUT ?= 15m

.PHONY: all build up down status test test-short test-faults lint fuzz demo bench bench-quality fmt clean

all: build

build:
	@mkdir -p bin
	$(GO) build -o bin/ ./edge-agent/cmd/... ./ingest/cmd/... ./scorer/cmd/... ./trainer/cmd/...

## up: install (first time) and start Mosquitto, Kafka and InfluxDB on loopback.
up:
	$(STACK) up

## down: stop exactly what `make up` started.
down:
	$(STACK) down

status:
	$(STACK) status

## lint: gofmt and go vet must be clean.
lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done

## test-short: unit tests only, no servers.
test-short:
	@for m in $(MODULES); do (cd $$m && $(GO) test -short -count=1 ./...) || exit 1; done

## test: lint, then unit, integration and end-to-end tests against the real local stack, then a short run of every fuzz target.
test: lint up
	@. deployments/stack/env.sh && for m in $(MODULES); do \
		echo "== $$m"; (cd $$m && $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...) || exit 1; \
	done
	FUZZTIME=5s deployments/fuzz.sh

## test-faults: the whole pipeline through broker, database and floor-broker faults (scorer/e2e TestFaults, also part of make test), then its report: recovery times, duplicates, counts.
test-faults: up
	@mkdir -p .stack/reports
	@. deployments/stack/env.sh && cd scorer && PDM_FAULT_REPORT=$(CURDIR)/.stack/reports/faults.txt \
		$(GO) test -count=1 -run '^TestFaults$$' -timeout $(TEST_TIMEOUT) ./e2e
	@cat .stack/reports/faults.txt

## fuzz: every fuzz target for FUZZTIME each (default 10s): make fuzz FUZZTIME=10m.
fuzz:
	deployments/fuzz.sh

## demo: the whole pipeline on the local stack with simulated machines.
demo: build up
	deployments/demo.sh

## bench: throughput and latency benchmarks against baselines measured in the same run.
bench: up
	deployments/bench.sh

## bench-quality: detection quality on the public data sets (SKAB, C-MAPSS, Tennessee Eastman).
bench-quality:
	deployments/bench-quality.sh

fmt:
	gofmt -w $(MODULES)

clean: down
	rm -rf bin .stack
