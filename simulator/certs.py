"""A throwaway certificate authority for TLS in tests and testbeds: a CA and the certificates it signs.

``TestCA(directory)`` writes ``ca.pem`` (and keeps its key in memory only); :meth:`TestCA.issue` writes a
PEM certificate and its unencrypted key (mode 0600) for a server (with the addresses and names it answers
on, which TLS clients check) or a client (whose common name etcd takes as the user name). Keys are ECDSA
P-256: fast to make, accepted by etcd (Go) and gRPC (BoringSSL). Nothing here is meant for production.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class CertFiles:
    """A certificate, its key, and the CA that signed it, as PEM files."""

    ca: Path
    cert: Path
    key: Path


def cert_files(directory: Path, name: str) -> CertFiles:
    """Where :meth:`TestCA.issue` puts ``name``'s certificate and key, and the CA, in ``directory``."""
    return CertFiles(ca=directory / "ca.pem", cert=directory / f"{name}.pem", key=directory / f"{name}-key.pem")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


class TestCA:
    """A CA whose certificate lives in ``directory/ca.pem``; issued files go to the same directory."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, common_name: str = "bwvisu test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_path = cert_files(directory, common_name).ca
        self.ca_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        name: str,
        *,
        ips: Iterable[str] = (),
        dns: Iterable[str] = (),
        server: bool = False,
        client: bool = True,
    ) -> CertFiles:
        """Write ``<name>.pem`` and ``<name>-key.pem``: common name ``name``, the given subject alternative
        names, and the extended key usages asked for (etcd members use one certificate for both)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        alt_names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        alt_names += [x509.DNSName(host) for host in dns]
        usages = [
            *([ExtendedKeyUsageOID.SERVER_AUTH] if server else []),
            *([ExtendedKeyUsageOID.CLIENT_AUTH] if client else []),
        ]
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        files = cert_files(self.directory, name)
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(files.key, key)
        return files
