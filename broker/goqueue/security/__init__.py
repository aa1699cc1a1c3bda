"""Who is calling and what they may do: principals, SCRAM-SHA-512 credentials, session tokens and ACLs; and the
broker credential that signs broker-to-broker requests (`broker_credential`).

Pure code (no I/O, no clock of its own): the API adapters resolve a principal per request and ask `acls.authorize`;
the users and ACLs themselves live in the replicated metadata (`replication/state.py`). docs/SECURITY.md.
"""
