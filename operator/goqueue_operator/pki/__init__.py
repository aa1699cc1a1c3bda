"""The cluster's TLS material: its own CA (SelfSigned) or cert-manager's Certificate (CertManager).

certs.py makes and reads certificates (the only module using `cryptography`); sans.py names what a broker
certificate must cover; plan.py decides the next step from the observed Secrets and the clock (pure);
execute.py performs it; certmanager.py drives a cert-manager Certificate instead; trust.py gives the operator's
own clients the CA bundle to verify brokers with.
"""
