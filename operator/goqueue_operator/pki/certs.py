"""Certificates as the operator makes and reads them: ECDSA P-256 keys, X.509 v3, PEM.

Making needs randomness and the clock, so these functions are called by the executor only; the planner sees
`CertFacts` (what a certificate says), never keys. A CA is `KeyPair` whose certificate may sign (BasicConstraints
CA, KeyUsage keyCertSign); a broker certificate serves and dials TLS (serverAuth and clientAuth: brokers call each
other with it on the internal listener).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import ip_address

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
CLOCK_SKEW = timedelta(minutes=5)  # notBefore is backdated: a peer whose clock is a little behind still accepts


class CertificateError(ValueError):
    """PEM that is not a certificate or key the operator can use; the message says which."""


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class CertFacts:
    """What the planner needs to know about one certificate."""

    fingerprint: str                 # SHA-256 of the DER: identity in bundles
    subject: str
    not_before: datetime
    not_after: datetime
    is_ca: bool
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    issuer_key_id: bytes | None = None   # authority key identifier: which CA signed it
    key_id: bytes | None = None          # subject key identifier

    def due(self, now: datetime, renew_before: timedelta) -> bool:
        return now >= self.not_after - renew_before

    def expired(self, now: datetime) -> bool:
        return now >= self.not_after


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "goqueue.io"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def issue_ca(common_name: str, *, now: datetime, validity: timedelta) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256()))
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue_leaf(ca: KeyPair, common_name: str, *, dns_names: Sequence[str], ip_addresses: Sequence[str],
               now: datetime, validity: timedelta) -> KeyPair:
    """A broker certificate signed by `ca`; never valid past the CA (a chain is only as good as its root)."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CertificateError("the CA key is not an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ip_address(a)) for a in ip_addresses]
    not_after = min(now + validity, ca_cert.not_valid_after_utc)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                         crl_sign=False, content_commitment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def facts_of(cert: x509.Certificate) -> CertFacts:
    constraints = _extension(cert, x509.BasicConstraints)
    san = _extension(cert, x509.SubjectAlternativeName)
    aki = _extension(cert, x509.AuthorityKeyIdentifier)
    ski = _extension(cert, x509.SubjectKeyIdentifier)
    return CertFacts(
        fingerprint=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        subject=cert.subject.rfc4514_string(),
        not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
        is_ca=isinstance(constraints, x509.BasicConstraints) and constraints.ca,
        dns_names=tuple(san.get_values_for_type(x509.DNSName)) if isinstance(san, x509.SubjectAlternativeName)
        else (),
        ip_addresses=tuple(str(a) for a in san.get_values_for_type(x509.IPAddress))
        if isinstance(san, x509.SubjectAlternativeName) else (),
        issuer_key_id=aki.key_identifier if isinstance(aki, x509.AuthorityKeyIdentifier) else None,
        key_id=ski.digest if isinstance(ski, x509.SubjectKeyIdentifier) else None,
    )


def read_bundle(pem: bytes) -> tuple[CertFacts, ...]:
    """Every certificate of a PEM bundle, in order; raises CertificateError when there is none or one is bad."""
    if PEM_BEGIN not in pem:
        raise CertificateError("no PEM certificate")
    try:
        return tuple(facts_of(c) for c in x509.load_pem_x509_certificates(pem))
    except ValueError as exc:
        raise CertificateError(f"unreadable PEM certificate: {exc}") from exc


def read_certificate(pem: bytes) -> CertFacts:
    """The first certificate of a PEM chain (the leaf, for a chain written leaf first)."""
    return read_bundle(pem)[0]


def key_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    """Whether the private key belongs to the (first) certificate: a half-written Secret must not be trusted."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_pem_x509_certificates(cert_pem)[0]
    except (ValueError, TypeError):
        return False
    return bool(key.public_key() == cert.public_key())


def bundle(*pems: bytes) -> bytes:
    """PEM certificates joined, each ending with one newline."""
    return b"".join(p.strip() + b"\n" for p in pems if p.strip())


def split_bundle(pem: bytes) -> tuple[bytes, ...]:
    """A PEM bundle cut into its certificates (PEM each)."""
    return tuple(c.public_bytes(serialization.Encoding.PEM) for c in x509.load_pem_x509_certificates(pem)) if (
        PEM_BEGIN in pem) else ()
