"""A throw-away PostgreSQL server for tests and benchmarks: its own cluster, port and socket.

The server is the Debian ``postgresql`` package's binaries (``/usr/lib/postgresql/*/bin``), run
as a plain child process with a fresh cluster (``initdb``) in a private temporary directory, on a
free TCP port of 127.0.0.1 and a unix socket in the same directory; it never touches a server the
machine already runs. ``initdb`` and ``postgres`` refuse to run as root, so under root they run as
the ``postgres`` system user (``setpriv``, which execs in place, so the process we started *is*
the server and stopping it is one signal) in a directory that user owns.

When PostgreSQL cannot be started the fixtures fail with the server's log; they never skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import psycopg
import pytest

__all__ = ["PostgresError", "PostgresServer", "find_postgres", "postgres_db", "postgres_server"]

HOST = "127.0.0.1"


class PostgresError(RuntimeError):
    """The test server could not be started; the message carries the tail of its log."""


def find_postgres() -> Path:
    """The ``bin`` directory of the newest installed PostgreSQL (Debian layout)."""
    found = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if (Path(p) / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise PostgresError(
            "the tests need PostgreSQL: apt-get install postgresql (scripts/test installs it); "
            "no /usr/lib/postgresql/*/bin/initdb found"
        )
    return found[-1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class PostgresServer:
    """One throw-away cluster. ``fsync=False`` (the default) trades durability for speed."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.fsync = fsync
        self.port = 0
        self.base: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._counter = 0

    # Under root, run as the postgres user; setpriv execs, so the pid we hold is the server's.
    def _as_owner(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]

    def _run(self, argv: list[str]) -> None:
        assert self.base is not None
        res = subprocess.run(
            self._as_owner() + argv,
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if res.returncode != 0:
            raise PostgresError(f"{argv[0]} failed ({res.returncode}): {res.stderr[-2000:]}")

    def start(self) -> PostgresServer:
        bindir = find_postgres()
        # A directory outside pytest's root-only tmp tree, owned by the server's user.
        # (Under root, in /tmp: $TMPDIR may sit below a directory the postgres user cannot enter.)
        root = os.geteuid() == 0 and Path("/tmp").is_dir()
        self.base = Path(tempfile.mkdtemp(prefix="smfel-pg-", dir="/tmp" if root else None))
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as err:
                raise PostgresError("running as root needs the 'postgres' system user") from err
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
        data = self.base / "data"
        self._run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                   "-E", "UTF8", "--no-sync", "--no-instructions"])  # fmt: skip
        self.port = _free_port()
        argv = [
            str(bindir / "postgres"), "-D", str(data), "-p", str(self.port),
            "-k", str(self.base), "-c", f"listen_addresses={HOST}",
            "-c", f"fsync={'on' if self.fsync else 'off'}",
            "-c", f"synchronous_commit={'on' if self.fsync else 'off'}",
            "-c", "full_page_writes=off" if not self.fsync else "full_page_writes=on",
        ]  # fmt: skip
        log = open(self.base / "server.log", "wb")  # noqa: SIM115 - handed to the child
        try:
            self._proc = subprocess.Popen(
                self._as_owner() + argv, cwd=self.base, stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            log.close()
        self._wait_ready()
        return self

    def _log_tail(self) -> str:
        assert self.base is not None
        with contextlib.suppress(OSError):
            return (self.base / "server.log").read_text(errors="replace")[-3000:]
        return "(no log)"

    def _wait_ready(self, timeout: float = 60.0) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise PostgresError(
                    f"postgres exited ({self._proc.returncode}):\n{self._log_tail()}"
                )
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as err:
                if time.monotonic() > deadline:
                    self.stop()
                    raise PostgresError(f"postgres not ready after {timeout} s: {err}") from err
                time.sleep(0.05)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{dbname}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL."""
        self._counter += 1
        name = f"{prefix}_{os.getpid()}_{self._counter}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_schema(self, prefix: str = "s") -> str:
        """A new empty schema in the ``postgres`` database (much faster than a database);
        returns a URL whose connections use it as their ``search_path``."""
        self._counter += 1
        name = f"{prefix}_{os.getpid()}_{self._counter}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return self.url("postgres") + f"?options=-csearch_path%3D{name}"

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)  # "fast" shutdown: disconnects clients
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._proc = None
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the session (started on first use); fails if it cannot start."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_db(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty schema on the session's server (``search_path`` set in the URL)."""
    return postgres_server.create_schema()
