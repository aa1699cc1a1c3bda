"""Pure builders of a GoQueueCluster's child objects: no client, no clock, no environment; same input, same dict.

One module per child kind; names only from `names.py`, labels and annotation keys only from `labels.py`.
`children.py` assembles them in apply order.
"""
