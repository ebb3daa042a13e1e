# Switchboard — two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench migrate clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

## run: set up and run Switchboard on the embedded defaults (SQLite, memory, sandbox providers)
run: $(STAMP)
	$(BIN)/python -m sandbox.demo

## test: set up and run the whole suite (DATABASE_URL / REDIS_URL select PostgreSQL / Redis)
test: $(STAMP)
	$(BIN)/python -m pytest -q

## bench: added latency of the proxy over calling the emulator directly; then two orgs on one
## provider bucket, one flooding; then signed Messenger webhooks at 200/s, acknowledged and delivered (BENCH_DATABASE_URL / BENCH_REDIS_URL move the PostgreSQL + Redis runs)
bench: $(STAMP)
	$(BIN)/python -m benchmarks.proxy_latency
	$(BIN)/python -m benchmarks.fairness
	$(BIN)/python -m benchmarks.webhook_ingest

## migrate: apply migrations to DATABASE_URL (default: the SQLite file in instance/)
migrate: $(STAMP)
	FLASK_APP=wsgi.py $(BIN)/flask db upgrade

clean:
	rm -rf $(VENV) instance .pytest_cache
