# govbus: `make run` (the whole bus with a demo feed), `make test` (all tests, real broker).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
KAFKA  := bash deploy/kafka/kafka.sh
EVENTS ?= 5000

.PHONY: install broker broker-stop run demo test unit integration bench lint format clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11+"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)
	@$(KAFKA) fetch

broker: install
	$(KAFKA) start

broker-stop:
	$(KAFKA) stop

run: install
	@bash deploy/with-broker.sh $(BIN)/govbus run

demo: install
	@bash deploy/with-broker.sh $(BIN)/govbus demo --events $(EVENTS)

test: install
	$(BIN)/pytest -q

unit: install
	$(BIN)/pytest -q tests/unit

integration: install
	$(BIN)/pytest -q tests/integration

bench: install
	@bash deploy/with-broker.sh $(BIN)/python benchmarks/router_throughput.py

# Backfill of 1M live keys from the central store: the router's peak RSS and time.
.PHONY: bench-backfill
bench-backfill: install
	@bash deploy/with-broker.sh $(BIN)/python benchmarks/backfill_memory.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	-$(KAFKA) stop
	rm -rf .govbus
