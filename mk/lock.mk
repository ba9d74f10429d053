# Locks: `make lock` regenerates every runtime lock from its .in with uv (mk/lock.sh has the table);
# `make test-locks` checks that each matches its .in and hashes every pin.
# Included by the Makefile (-include mk/*.mk) before its own rules: keep its default goal.
_lock_default_goal := $(.DEFAULT_GOAL)

LOCK_VENV := $(VENV)/lock
UV := $(LOCK_VENV)/bin/uv
LOCKS := $(shell bash mk/lock.sh list)

TEST_EXTRA += test-locks

.PHONY: lock test-locks

$(LOCK_VENV)/.installed: requirements-lock.txt
	rm -rf $(LOCK_VENV) && $(PY) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install $(PIP_FLAGS) --require-hashes -r $<
	touch $@

lock: $(LOCK_VENV)/.installed
	@set -e; for lock in $(LOCKS); do echo "lock $$lock"; UV=$(UV) bash mk/lock.sh compile $$lock; done

# Each lock recompiled from its .in (its current pins preferred) must come out unchanged.
test-locks: $(LOCK_VENV)/.installed $(VENV)/dev/.installed
	UV=$(UV) $(VENV)/dev/bin/python -m pytest -q -p no:cacheprovider tests/locks

.DEFAULT_GOAL := $(_lock_default_goal)
