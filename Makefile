# govbus: `make run` (the whole bus with a demo feed), `make test` (all tests, real broker).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
KAFKA  := bash deploy/kafka/kafka.sh
PG     := bash deploy/postgres/pg.sh
EVENTS ?= 5000
CDC    ?= 1
QUICK  ?=
# The Quix Streams peer of `make bench` has its own virtualenv: quixstreams caps confluent-kafka
# below the project's pin.
QUIX_VENV  := .venv-quix
QUIX_REQS  := benchmarks/quix/requirements.txt
QUIX_STAMP := $(QUIX_VENV)/.installed-$(shell sha256sum $(QUIX_REQS) | cut -c1-12)

.PHONY: install broker broker-stop postgres postgres-stop run demo test unit integration bench quix-venv \
	bench-store bench-backfill lint format clean cdc-reset

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11+"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)
	@$(KAFKA) fetch
	@bash deploy/chromium.sh ensure
	@bash deploy/connect/connect.sh fetch

broker: install
	$(KAFKA) start

broker-stop:
	$(KAFKA) stop

# A local PostgreSQL for the central store: `make run` / `make demo` use it when
# GOVBUS_STORE_URL is set to the URL printed here.
postgres: install
	@$(PG) start
	@echo "export GOVBUS_STORE_URL=$$($(PG) url)"

postgres-stop:
	$(PG) stop

# The demo runs on the public demo secrets (mask secret, registry password): demo mode on.
# CDC=1 (the default): the demo's changes are written into a provider PostgreSQL and reach
# the bus through Debezium on Kafka Connect; CDC=0: the demo feed publishes directly.
run: install
	@CDC=$(CDC) GOVBUS_DEMO_MODE=1 bash deploy/with-broker.sh bash deploy/with-cdc.sh $(BIN)/govbus run

# Remove the demo's Debezium connectors with their replication slots and publications.
cdc-reset: install
	@for f in deploy/adapters/*.yaml; do grep -q '^kind: debezium' $$f && \
		$(BIN)/govbus adapter $$(basename $$f .yaml) --remove; done; true

demo: install
	@GOVBUS_DEMO_MODE=1 bash deploy/with-broker.sh $(BIN)/govbus demo --events $(EVENTS)

test: install
	$(BIN)/pytest -q

unit: install
	$(BIN)/pytest -q tests/unit

integration: install
	$(BIN)/pytest -q tests/integration

$(QUIX_STAMP): $(QUIX_REQS)
	$(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/pip install -q --upgrade pip
	$(QUIX_VENV)/bin/pip install -q -r $(QUIX_REQS)
	@rm -f $(QUIX_VENV)/.installed-* && touch $@

quix-venv: $(QUIX_STAMP)

# Every router figure in one run on one broker (benchmarks/router_bench.py); QUICK=1 shortens
# the 10-minute soak at half load to 30 s.
bench: install $(QUIX_STAMP)
	@bash deploy/with-broker.sh $(BIN)/python benchmarks/router_bench.py $(if $(QUICK),--quick)

# The central store's upsert path against a raw COPY, on the project's own PostgreSQL.
bench-store: install
	$(PG) start
	$(BIN)/python benchmarks/store_upsert.py --url "$$($(PG) url)"

# Backfill of 1M live keys from the central store: the router's peak RSS and time.
bench-backfill: install
	@bash deploy/with-broker.sh $(BIN)/python benchmarks/backfill_memory.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	-bash deploy/connect/connect.sh stop
	-$(KAFKA) stop
	-$(PG) stop
	rm -rf .govbus
