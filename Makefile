# GoQueue developer entry points. `make up` / `make test` / `make down` are the README's commands.
SHELL := /bin/bash
PYTHON ?= python3
STATE_DIR ?= $(HOME)/.local/state/goqueue
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: help install system-deps binaries lint test test-unit test-integration e2e e2e-kind up down bench proto

help:
	@echo "make up      start GoQueue locally (control plane + operator + 3 brokers)"
	@echo "make test    install what is missing, lint, run every test tier"
	@echo "make e2e     end-to-end scenarios on the local control plane (make e2e-kind: on kind)"
	@echo "make down    stop everything 'make up' started"
	@echo "make bench   run the benchmarks (prints figures; see docs/PERFORMANCE.md)"

install: system-deps
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[dev]'

# Debian packages the tests use: nss_wrapper gives broker processes the pods' DNS names (docs/CONTROL_PLANE.md);
# prometheus ships promtool (alert rules are checked and unit-tested with it); redis-server is the benchmark's
# reference; iproute2 builds the network-partition test's namespaces.
system-deps:
	@missing=""; for p in libnss-wrapper prometheus redis-server iproute2; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing"; \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

# Upstream etcd / kube-apiserver / kube-controller-manager / helm, built from their Go modules and cached in $HOME.
binaries:
	bash harness/build_binaries.sh

proto:
	bash scripts/gen_proto.sh

lint:
	ruff check .
	mypy broker/goqueue
	mypy harness/goqueue_harness
	MYPYPATH=tests/harness mypy --strict tests/harness
	lint-imports

test: install binaries lint
	$(PYTHON) -m pytest

test-unit:
	$(PYTHON) -m pytest -m unit

test-integration: binaries
	$(PYTHON) -m pytest -m integration

# End-to-end scenarios (e2e/README.md): on the local control plane (also part of `make test`), or on kind
# (needs docker and kind: builds both images, loads them, installs the charts).
e2e: install binaries
	$(PYTHON) -m pytest e2e --e2e-backend=local

e2e-kind: install
	$(PYTHON) -m pytest e2e --e2e-backend=kind

# The local control plane, then `helm upgrade --install charts/goqueue-operator` (namespace goqueue-system) and the
# sample GoQueueCluster in namespace goqueue, waited until Ready; prints what to type next. Idempotent
# (docs/CONTROL_PLANE.md).
up: install binaries
	PYTHONPATH=harness $(PYTHON) -m goqueue_harness up
	PYTHONPATH=harness $(PYTHON) -m goqueue_harness demo

# Stops the kubelet (pods first), the control plane, and deletes the cluster's data (keeps the CA).
down:
	PYTHONPATH=harness $(PYTHON) -m goqueue_harness down

bench:
	$(PYTHON) bench/produce_consume.py
