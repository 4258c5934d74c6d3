"""A secured broker for the transport tests: mutual TLS, passwords and an ACL per node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from smfel.agent.transport import MqttConfig, TlsConfig
from tests.support.broker import MosquittoBroker

ACL = """\
user dev-1
topic write smfel/v1/fl/updates/dev-1
topic write smfel/v1/nodes/dev-1/#
topic read smfel/v1/fl/round
topic read smfel/v1/nodes/dev-1/labels

user agg
topic read smfel/v1/#
topic write smfel/v1/fl/#
"""
PASSWORDS = {"dev-1": "dev-secret", "agg": "agg-secret"}


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(
        tmp_path_factory.mktemp("secure-broker"),
        users=PASSWORDS,
        acl=ACL,
        tls=True,
        require_certificate=True,
        plain=False,
    )
    with broker:
        yield broker


def secure_config(broker: MosquittoBroker, user: str, tmp: Path, **kw: object) -> MqttConfig:
    """Mutual TLS with a client certificate of its own, and the user's password."""
    files = broker.tls_files
    assert files is not None
    cert, key = files.client(tmp, user)
    options: dict[str, object] = {
        "username": user,
        "password": PASSWORDS.get(user, "wrong"),
        "tls": TlsConfig(files.ca, cert, key),
        "backoff_min": 0.05,
        "backoff_max": 0.5,
    }
    options.update(kw)
    return MqttConfig("localhost", broker.tls_port, f"{user}-{tmp.name}", **options)  # type: ignore[arg-type]
