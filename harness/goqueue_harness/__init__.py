"""GoQueue's test harness: a real Kubernetes control plane without containers.

Why it exists: the operator must be proven against real API-server semantics
(CRD validation, finalizers, garbage collection, the StatefulSet and PVC
controllers) on machines with no container runtime. This package builds and runs
etcd, kube-apiserver and kube-controller-manager from pinned upstream sources and
adds a process-kubelet that runs pod containers as local processes.

It is test infrastructure, never imported by product code (`goqueue`,
`goqueue_operator`). Entry points: ``python -m goqueue_harness up|down|status|build``
and the pytest plugin ``goqueue_harness.pytest_plugin``.
"""
