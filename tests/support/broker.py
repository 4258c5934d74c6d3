"""A real Mosquitto broker for tests: free ports, a private directory, optional TLS, passwords, ACL.

Tests talk to the same broker the devices use in the field (Debian ``mosquitto`` 2.x), started as
a plain process on ports chosen at start time, with its configuration, certificates, password
file, ACL, persistence database and log in one temporary directory. The broker can be stopped
(gracefully, SIGTERM, which writes the persistence database) or killed (SIGKILL) and started
again on the same ports with the same database, which is what the fault tests need.

See ``../shared/STACK_NOTES.md`` section 6: the config carries ``user root`` because a broker
started as root otherwise drops to user ``mosquitto`` and cannot read a root-owned 0700 directory.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["BrokerError", "MosquittoBroker", "TlsFiles", "find_mosquitto", "make_tls_files"]

_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
HOST = "127.0.0.1"


class BrokerError(RuntimeError):
    """The test broker could not be started; the message carries the tail of its log."""


def find_mosquitto() -> tuple[str, str]:
    """Paths of ``mosquitto`` and ``mosquitto_passwd``; a clear error when they are missing."""
    broker = shutil.which("mosquitto", path=_SEARCH_PATH)
    passwd = shutil.which("mosquitto_passwd", path=_SEARCH_PATH)
    if broker is None or passwd is None:
        raise BrokerError(
            "the tests need the Mosquitto broker: apt-get install mosquitto "
            "(scripts/test installs it); mosquitto or mosquitto_passwd not found on " + _SEARCH_PATH
        )
    return broker, passwd


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files of a throw-away CA, a server certificate for 127.0.0.1/localhost and clients."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client(self, directory: Path, name: str) -> tuple[Path, Path]:
        """A further client certificate (CN = ``name``) signed by the same CA: (cert, key)."""
        ca_key = serialization.load_pem_private_key(
            (self.ca.parent / "ca.key").read_bytes(), password=None
        )
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        ca_cert = x509.load_pem_x509_certificate(self.ca.read_bytes())
        return _issue(directory, name, ca_cert, ca_key, server=False)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return builder.not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(
        now + dt.timedelta(days=2)
    )


def _issue(
    directory: Path,
    name: str,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    server: bool,
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
    cert = _validity(builder).sign(ca_key, hashes.SHA256())
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return cert_path, key_path


def make_tls_files(directory: Path, *, client_name: str = "client") -> TlsFiles:
    """Generate a CA (EC P-256), a server certificate and one client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smfel test CA")])
    ca_cert = _validity(
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    ).sign(ca_key, hashes.SHA256())
    (directory / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(directory / "ca.key", ca_key)
    server_cert, server_key = _issue(directory, "server", ca_cert, ca_key, server=True)
    client_cert, client_key = _issue(directory, client_name, ca_cert, ca_key, server=False)
    return TlsFiles(directory / "ca.crt", server_cert, server_key, client_cert, client_key)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class MosquittoBroker:
    """One Mosquitto process in ``directory``; a context manager (start on enter, stop on exit).

    * ``users``: name -> password; when given, a password file is written and anonymous
      clients are refused (unless ``allow_anonymous=True``).
    * ``acl``: the ACL file's text (``user NAME`` / ``topic read|write|readwrite FILTER``).
    * ``tls``: adds a TLS listener on :attr:`tls_port` with certificates in ``directory/certs``;
      ``require_certificate`` makes it mutual TLS.
    * ``plain``: keep the plain TCP listener on :attr:`port` (default True).

    Ports are chosen on the first :meth:`start` and kept for every restart.
    """

    def __init__(
        self,
        directory: Path,
        *,
        users: Mapping[str, str] | None = None,
        acl: str | None = None,
        allow_anonymous: bool | None = None,
        tls: bool = False,
        require_certificate: bool = False,
        plain: bool = True,
        persistence: bool = True,
        max_queued_messages: int = 100_000,
        extra_config: Sequence[str] = (),
    ) -> None:
        self.directory = Path(directory)
        self.users = dict(users or {})
        self.acl = acl
        self.allow_anonymous = (not self.users) if allow_anonymous is None else allow_anonymous
        self.tls = tls
        self.require_certificate = require_certificate
        self.plain = plain
        self.persistence = persistence
        self.max_queued_messages = max_queued_messages
        self.extra_config = tuple(extra_config)
        self.host = HOST
        self.port = 0
        self.tls_port = 0
        self.tls_files: TlsFiles | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self.directory / "mosquitto.log"

    # -- files -------------------------------------------------------------------------------

    def _prepare(self) -> None:
        _, passwd_tool = find_mosquitto()
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "data").mkdir(exist_ok=True)
        if self.tls and self.tls_files is None:
            self.tls_files = make_tls_files(self.directory / "certs")
        if self.users:
            pwfile = self.directory / "passwd"
            pwfile.unlink(missing_ok=True)
            for i, (name, password) in enumerate(self.users.items()):
                args = [passwd_tool, *(["-c"] if i == 0 else []), "-b", str(pwfile), name, password]
                subprocess.run(args, check=True, capture_output=True, timeout=30)
            pwfile.chmod(0o600)
        if self.acl is not None:
            (self.directory / "acl").write_text(self.acl)
        if self.port == 0 and self.plain:
            self.port = _free_port()
        if self.tls_port == 0 and self.tls:
            self.tls_port = _free_port()
        (self.directory / "mosquitto.conf").write_text(self.config_text())

    def config_text(self) -> str:
        d = self.directory
        lines = [
            "per_listener_settings false",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            f"max_queued_messages {self.max_queued_messages}",
            "max_inflight_messages 100",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %H:%M:%S",
            "user root",
        ]
        if self.persistence:
            lines += [
                "persistence true",
                f"persistence_location {d / 'data'}/",
                "autosave_interval 1",
            ]
        if self.users:
            lines.append(f"password_file {d / 'passwd'}")
        if self.acl is not None:
            lines.append(f"acl_file {d / 'acl'}")
        lines += list(self.extra_config)
        if self.tls:
            assert self.tls_files is not None
            t = self.tls_files
            lines += [
                "",
                f"listener {self.tls_port} {HOST}",
                "protocol mqtt",
                f"cafile {t.ca}",
                f"certfile {t.server_cert}",
                f"keyfile {t.server_key}",
                "tls_version tlsv1.2",
                f"require_certificate {'true' if self.require_certificate else 'false'}",
            ]
        if self.plain:
            lines += ["", f"listener {self.port} {HOST}", "protocol mqtt"]
        return "\n".join(lines) + "\n"

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def log_text(self) -> str:
        try:
            return self._log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        """Start the broker and wait until every listener accepts TCP connections."""
        if self.running:
            return self
        binary, _ = find_mosquitto()
        self._prepare()
        log = self._log.open("ab")
        try:
            self._proc = subprocess.Popen(
                [binary, "-c", str(self.directory / "mosquitto.conf")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        ports = [p for p in (self.port, self.tls_port) if p]
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise BrokerError(f"mosquitto exited with {code}:\n{self.log_text()[-2000:]}")
            if all(_accepts(self.host, p) for p in ports):
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerError(
                    f"mosquitto did not listen on {ports} in {timeout} s:\n"
                    + self.log_text()[-2000:]
                )
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM): the broker writes its persistence database first."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def kill(self) -> None:
        """Kill at once (SIGKILL): only what the last autosave wrote survives."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait(10)

    def restart(self, *, hard: bool = False, pause: float = 0.0) -> None:
        """Stop (or kill with ``hard``) and start again on the same ports and database."""
        if hard:
            self.kill()
        else:
            self.stop()
        if pause:
            time.sleep(pause)
        self.start()

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _accepts(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0
