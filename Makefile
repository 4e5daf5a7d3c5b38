# The two commands the README gives (run as root on a Debian 12 machine):
#   make demo   a real container VM through the hook scripts, end to end
#   make test   every test (unit, integration on real engines and libvirt)
# Both install what is missing (dev/setup), start the daemons that are not
# running (dev/services start) and stop again only what they started.

PYTEST_ARGS ?=
# What pytest collects; e.g. TESTS="$$(ls tests/*_test.py | sort -r)" runs
# the files in reverse order (no test may depend on another's leftovers).
# The recipe uses $(strip ...): a list with newlines, as $$(ls) gives it,
# would otherwise split the recipe line and run only the first file.
# --durations: CI's log names the slowest tests (CI must stay < 30 min).
# No cache: pytest's last-failed list is a leftover a later run would read
# (tests/conftest.py turns off Hypothesis's example database likewise).
TESTS ?= tests

# No bytecode in the checkout from any recipe (the demo and bench import
# lib/ from here; pytest's conftest stops it too): .ci/run fails on it.
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: test demo setup compat bench

setup:
	dev/setup

test: setup
	dev/run-with-services .venv/bin/python -m pytest -p no:cacheprovider -ra --durations=25 $(PYTEST_ARGS) $(strip $(TESTS))

demo: setup
	dev/run-with-services .venv/bin/python dev/demo.py

# The monitoring's costs as ratios against baselines (see README.md).
bench: setup
	dev/run-with-services .venv/bin/python dev/bench.py

# Python 2.7 / 3.6+ compatibility of everything that runs on a host.
compat: setup
	.venv/bin/vermin -q --no-tips --violations -t=2.7 -t=3.6- \
		lib hooks helper
