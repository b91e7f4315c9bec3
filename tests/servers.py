"""Real servers the tests start for themselves and stop afterwards: PostgreSQL from the machine's own
binaries (`pg_config --bindir`), on loopback and a free port, in a throwaway directory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def postgres_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    bindir = Path(subprocess.check_output([pg_config, "--bindir"], text=True).strip())
    return bindir if (bindir / "initdb").exists() else None


@contextmanager
def postgres_server(host: str = "127.0.0.1", port: int | None = None, clients: str | None = None) -> Iterator[str]:
    """Yields the URL of a new PostgreSQL cluster's `postgres` database, on a free port unless given one; `clients`
    (a CIDR such as `10.1.2.0/24`) may connect too, besides loopback. The server refuses to run as root, so under
    root (as on CI) it runs as the `postgres` user in a directory that user owns."""
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL's server binaries were not found (pg_config --bindir)")
    base = Path(tempfile.mkdtemp(prefix="llm-platform-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", port or free_port(host)
    run = [*as_user, str(bindir / "pg_ctl"), "-D", str(data)]
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
    )
    if clients:
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {clients} trust\n")
    options = f"-p {port} -k {base} -c listen_addresses={host} -c fsync=off -c full_page_writes=off"
    subprocess.run([*run, "-o", options, "-l", str(base / "log"), "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@{host}:{port}/postgres"
    finally:
        subprocess.run([*run, "-m", "immediate", "-w", "stop"], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def new_database(server_url: str, name: str) -> str:
    """A fresh, empty database on the server; returns its URL."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def s3_server(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Yields the endpoint URL of moto's S3 server, in this process, bound to `host` only (on a free port unless
    given one)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    try:
        bound_host, port = server.get_host_and_port()
        yield f"http://{bound_host}:{port}"
    finally:
        server.stop()
