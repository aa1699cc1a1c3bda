"""Certificates for the TLS tests, minted with `cryptography`: a CA, and leaves it signs — a broker's (valid for
127.0.0.1 and localhost), a client's (its CN becomes the principal), an expired one, and ones from another CA.
Each `issue` writes `<name>.crt` and `<name>.key` (PEM) and returns their paths."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC)
LOOPBACK_SANS: tuple[x509.GeneralName, ...] = (x509.DNSName("localhost"),
                                              x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
# A LocalCluster's brokers advertise 127.0.0.2, 127.0.0.3, ...: one certificate serves them all.
CLUSTER_SANS = (*LOOPBACK_SANS, *(x509.IPAddress(ipaddress.ip_address(f"127.0.0.{i}")) for i in range(2, 10)))


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


class TestCa:
    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str = "goqueue-test-ca") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256()))
        self.cert_file = directory / f"{name}.crt"
        self.cert_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    @classmethod
    def from_pem(cls, directory: Path, certificate: bytes, key: bytes) -> TestCa:
        """An existing CA (e.g. an operator's cluster CA read from its Secret), to sign test certificates with."""
        ca = cls.__new__(cls)
        ca.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        loaded_key = serialization.load_pem_private_key(key, password=None)
        assert isinstance(loaded_key, ec.EllipticCurvePrivateKey), "the tests sign with EC keys"
        ca.key = loaded_key
        ca.certificate = x509.load_pem_x509_certificate(certificate)
        ca.name = ca.certificate.subject
        ca.cert_file = directory / "ca.crt"
        ca.cert_file.write_bytes(certificate)
        return ca

    def issue(self, name: str, common_name: str, *, sans: tuple[x509.GeneralName, ...] = LOOPBACK_SANS,
              not_before: dt.datetime | None = None, not_after: dt.datetime | None = None) -> Issued:
        """A leaf for servers and clients alike (both extended key usages), valid from a day ago for 30 days unless
        told otherwise."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - dt.timedelta(days=1))
            .not_valid_after(not_after or NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        issued = Issued(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        issued.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
        return issued


def broker_tls_env(ca: TestCa, broker: Issued, **overrides: str) -> dict[str, str]:
    """The GOQUEUE_TLS_* settings of a broker serving `broker` and trusting `ca` for peers and for client
    certificates (clientCaFile named explicitly: without it no client certificate authenticates)."""
    return {"GOQUEUE_TLS_CERTFILE": str(broker.cert), "GOQUEUE_TLS_KEYFILE": str(broker.key),
            "GOQUEUE_TLS_CAFILE": str(ca.cert_file), "GOQUEUE_TLS_CLIENTCAFILE": str(ca.cert_file), **overrides}
