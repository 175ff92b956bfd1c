# The verbs a newcomer looks for. `make run` and `make test` work on a fresh clone.
.PHONY: install test run lint check-deploy test-aws

VENV := .venv
STAMP := $(VENV)/.installed

install: $(STAMP) chromium

# Reinstalls only when the dependencies change.
$(STAMP): pyproject.toml $(wildcard package-lock.json)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[dev]'
	if [ -f package.json ]; then npm ci; fi
	touch $(STAMP)

# The web console's browser tests drive Debian's Chromium (no browser download): installed when missing
# and the user is root, otherwise the command to run is printed (and those tests fail saying it too).
CHROMIUM_PACKAGES := chromium chromium-driver
.PHONY: chromium
chromium:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update && apt-get install -y $(CHROMIUM_PACKAGES); \
	else \
		echo "The console's browser tests need Chromium: sudo apt-get update && sudo apt-get install -y $(CHROMIUM_PACKAGES)"; \
	fi

test: install
	$(VENV)/bin/pytest -n 3

# The whole system on this machine: hello-world runs to its end, then it keeps serving until Ctrl-C.
run: install
	$(VENV)/bin/jobscheduler local

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Every benchmark in bench/, one table, under ten minutes; figures in bench/results/latest.json.
.PHONY: bench
bench: install
	$(VENV)/bin/python -m bench.run

# Before a deploy: the offline checks (cdk-nag, cfn-lint, the workflow against an SDK model a year old),
# then Step Functions' own validation of the definition when AWS credentials are configured.
check-deploy: install
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/test_stack.py tests/test_sdk_model.py
	$(VENV)/bin/python -m infra.validate_definition

# Deploys a throwaway stack to the configured AWS account, runs real jobs, destroys it (costs money; see README).
test-aws: check-deploy
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pytest -v -p no:cacheprovider tests/live
