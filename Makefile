# GoQueue developer entry points. `make up` / `make test` / `make down` are the README's commands.
SHELL := /bin/bash
PYTHON ?= python3
STATE_DIR ?= $(HOME)/.local/state/goqueue
# make up's cluster: kind where Docker can run, else the local control plane (auto); or BACKEND=kind / local.
BACKEND ?= auto
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: help install system-deps bench-deps binaries lint test test-unit test-integration e2e e2e-local e2e-kind up down bench proto

help:
	@echo "make up      start GoQueue: operator + 3 brokers on kind (BACKEND=local: the local control plane)"
	@echo "make test    install what is missing, lint, run every test tier"
	@echo "make e2e     end-to-end scenarios on the local control plane and kind (e2e-local / e2e-kind: one)"
	@echo "make down    stop everything 'make up' started (kind cluster, Docker daemon, control plane)"
	@echo "make bench   run the benchmarks (prints figures; see docs/PERFORMANCE.md)"

install: system-deps
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[dev]'

# Debian packages the tests use: nss_wrapper gives broker processes the pods' DNS names (docs/CONTROL_PLANE.md);
# prometheus ships promtool (alert rules are checked and unit-tested with it); iproute2 builds
# the network-partition test's namespaces; docker.io runs the images and kind (its daemon is started by the harness
# when none runs), mmdebstrap makes base images from Debian packages where no registry answers, libseccomp-dev +
# pkg-config build runc for the kind node image (docs/KIND.md).
system-deps:
	@missing=""; for p in libnss-wrapper prometheus iproute2 docker.io mmdebstrap libseccomp-dev pkg-config; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing"; \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

# The benchmarks' references (bench/produce_consume.py, bench/references.py), which no test needs: kept out of
# `make test` so CI installs (and, on a host with systemd, starts) no database it does not use.
bench-deps:
	@missing=""; for p in redis-server rabbitmq-server; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing"; \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

# Upstream etcd / kube-apiserver / kube-controller-manager / helm, then kind and a kind node's pieces (containerd,
# runc, kubelet, …), built from their Go modules and cached in $HOME.
binaries:
	bash harness/build_binaries.sh
	bash harness/build_binaries.sh kind

proto:
	bash scripts/gen_proto.sh

lint:
	ruff check .
	mypy --strict broker/goqueue
	mypy --strict operator/goqueue_operator
	mypy --strict harness/goqueue_harness
	MYPYPATH=tests/harness mypy --strict tests/harness
	lint-imports

# Two lanes: the tests that use the machine-wide cluster pieces in one worker, everything else in the other
# (harness/goqueue_harness/pytest_plugin.py, "lanes").
test: install binaries lint
	$(PYTHON) -m pytest -n 2

test-unit:
	$(PYTHON) -m pytest -m unit

test-integration: binaries
	$(PYTHON) -m pytest -m integration

# End-to-end scenarios (e2e/README.md), part of `make test`: on the local control plane and on kind (builds both
# images, loads them, installs the charts).
e2e: install binaries
	$(PYTHON) -m pytest e2e --e2e-backend=local,kind

e2e-local: install binaries
	$(PYTHON) -m pytest e2e --e2e-backend=local

e2e-kind: install binaries
	$(PYTHON) -m pytest e2e --e2e-backend=kind

# A kind cluster `goqueue` (docs/KIND.md; the local control plane where Docker cannot run, or BACKEND=local:
# docs/CONTROL_PLANE.md), both images built and loaded, `helm upgrade --install charts/goqueue-operator` (namespace
# goqueue-system) and the sample GoQueueCluster in namespace goqueue, waited until Ready; prints what to type next.
# Idempotent.
up: install binaries
	PYTHONPATH=harness $(PYTHON) -m goqueue_harness make-up --backend $(BACKEND)

# Deletes make up's kind cluster, stops a Docker daemon the harness started, stops the local kubelet (pods first)
# and control plane and deletes its data (keeps the CA). Says what it found; fine with nothing up.
down:
	PYTHONPATH=harness $(PYTHON) -m goqueue_harness make-down

bench: bench-deps
	$(PYTHON) bench/produce_consume.py
