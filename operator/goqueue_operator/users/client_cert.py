"""A tls GoQueueUser's client certificate: CN = the user name (the brokers' principal `User:<CN>`), signed by the
cluster CA the operator holds (issuer SelfSigned; the brokers trust it for client certificates: `tls.clientCaFile`
defaults to the CA bundle they mount), clientAuth only and no subject alternative names — it proves who a client
is and cannot serve TLS. Never valid past its CA. Making needs randomness and the clock: called by the handler.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from goqueue_operator.pki.certs import CLOCK_SKEW, CertificateError, KeyPair, key_matches, read_certificate

MAX_COMMON_NAME = 64  # X.509's upper bound for a CN: longer user names cannot be a certificate's principal


def issue_client_certificate(ca: KeyPair, user: str, *, now: datetime, validity: timedelta) -> KeyPair:
    if len(user) > MAX_COMMON_NAME:
        raise CertificateError(f"user name {user!r} is longer than a certificate's CN ({MAX_COMMON_NAME})")
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CertificateError("the CA key is not an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "goqueue.io"),
                         x509.NameAttribute(NameOID.COMMON_NAME, user)])
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                         crl_sign=False, content_commitment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def certificate_problem(cert_pem: bytes | None, key_pem: bytes | None, signing_ca_pem: bytes, user: str, *,
                        now: datetime, renew_before: timedelta) -> str | None:
    """Why a user's certificate must be issued again (None: it is good): missing, unreadable, another subject,
    signed by a CA that no longer signs (the cluster CA was renewed), or due for renewal. Pure."""
    if not cert_pem or not key_pem:
        return "no certificate yet"
    try:
        facts, ca = read_certificate(cert_pem), read_certificate(signing_ca_pem)
        if not key_matches(cert_pem, key_pem):
            return "its key does not belong to its certificate"
    except CertificateError as exc:
        return f"its certificate is unreadable ({exc})"
    if f"CN={user}" not in facts.subject.split(","):
        return f"its certificate names {facts.subject}, not CN={user}"
    if facts.issuer_key_id != ca.key_id:
        return "its certificate was signed by another CA than the cluster's signing CA"
    if facts.due(now, renew_before):
        return f"its certificate expires {facts.not_after:%Y-%m-%dT%H:%M:%SZ}: renewal due"
    return None
