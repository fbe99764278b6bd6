# laserlog: `make demo` opens the TUI on a simulated console, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo serve test bench lint clean pg-server ser2net

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/laserlog demo

# The officer's read-only web view of the default database on http://127.0.0.1:8001/.
serve: $(STAMP)
	$(BIN)/laserlog serve

# Everything on four processes (pyproject.toml), then the tests that bound wall-clock time
# alone on one process, so the suite's own load does not count against them.
test: $(STAMP) pg-server ser2net
	@status=0; \
	$(BIN)/python -m pytest -q -m "not realtime" || status=$$?; \
	$(BIN)/python -m pytest -q -n 0 -m realtime || status=$$?; \
	exit $$status

# tests/test_sync.py starts a throwaway PostgreSQL: install the server package when initdb is
# missing and we may (root with apt-get). Never fails the build; the tests say why they skip.
pg-server:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	         DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1 \
	         || { apt-get update -q >/dev/null 2>&1 && \
	              DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1; } \
	         || echo "note: could not install postgresql; the central-server tests will skip"; \
	       else echo "note: no PostgreSQL server (initdb); the central-server tests will skip"; fi; }

# tests/test_network_ports.py records through a real ser2net on loopback (socket:// and
# rfc2217://): install Debian's package when it is missing and we may. Never fails the build.
ser2net:
	@command -v ser2net >/dev/null 2>&1 || [ -x /usr/sbin/ser2net ] \
	  || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	         DEBIAN_FRONTEND=noninteractive apt-get install -y -q ser2net >/dev/null 2>&1 \
	         || { apt-get update -q >/dev/null 2>&1 && \
	              DEBIAN_FRONTEND=noninteractive apt-get install -y -q ser2net >/dev/null 2>&1; } \
	         || echo "note: could not install ser2net; the network port tests will skip"; \
	       else echo "note: no ser2net; the network port tests will skip"; fi; }

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check src drivers tests benchmarks
	$(BIN)/mypy src
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) dist build .pytest_cache .hypothesis
