"""This broker's place in the cluster: metadata Raft membership and the controller (`membership`), the topic view
of the metadata (`topics`), and the operator's admin questions answered from the metadata (`admin`).

Nothing here knows the broker's replicas or its request handling: metadata changes leave through the `on_applied`
callback the composition root (`server.py`) wires to `replicas.ReplicaManager.schedule_reconcile`.
"""
