"""A self-signed certificate for serving the room over HTTPS on a LAN.

Browsers grant the microphone only to secure origins: ``https://`` or ``http://localhost``. A
tester opening ``http://192.168.1.20:7860`` from another laptop gets no microphone, so
``python -m web --lan --https`` serves HTTPS with a certificate made here (once, kept under the
data dir). Each tester's browser warns about it the first time ("not private"); they accept it
for this address and the microphone works. The certificate names this machine's host name,
``localhost`` and every address it is served on, and is made again when an address changes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback (best effort, no packets sent)."""
    found: set[str] = set()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # picks the default route's interface
            found.add(s.getsockname()[0])
    except OSError:
        pass
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.add(str(info[4][0]))
    except OSError:
        pass
    return sorted(a for a in found if not ipaddress.ip_address(a).is_loopback)


def self_signed_cert(directory: Path, addresses: list[str]) -> tuple[Path, Path]:
    """Return ``(cert.pem, key.pem)`` valid for ``addresses``, making them if needed.

    Args:
        directory: where the files live (created, key readable by this user only).
        addresses: IP addresses and host names the room is opened at.
    """
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    names = sorted({"localhost", "127.0.0.1", socket.gethostname(), *addresses})
    if cert_path.exists() and key_path.exists() and _covers(cert_path, names):
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Local avatars room")])
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _covers(cert_path: Path, names: list[str]) -> bool:
    """Whether the certificate is still valid for a while and names every one of ``names``."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    have = {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    have |= set(san.get_values_for_type(x509.DNSName))
    fresh = cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=7)
    return fresh and set(names) <= have
