"""The platform on a cluster of namespaced hosts, each started with the command and environment compose.yaml
gives its service (`python -m gateway.node head|worker`), beside PostgreSQL and an S3 store on the bridge, under
the names and ports compose.yaml uses (`postgres:5432`, `s3:9000`)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import psycopg
import yaml

from gateway.cluster_secrets import generate
from tests.cluster.hosts import Host, Network
from tests.servers import postgres_server, s3_server

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 600
BASE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HOME": "/root", "LANG": "C.UTF-8"}
OBJECT_STORE_BYTES = "150000000"  # /dev/shm is shared by every host on this machine


def compose_service(name: str) -> tuple[list[str], dict[str, str]]:
    """The command and environment compose.yaml gives the service `name`, with this environment's Python."""
    service = yaml.safe_load((REPO / "compose.yaml").read_text())["services"][name]
    command = [sys.executable if part == "python" else part for part in service["command"]]
    return command, {key: str(value) for key, value in service["environment"].items()}


class Cluster:
    """Hosts join with `add_worker()`; `head` runs the platform. Every host has its own disk and Ray temp dir."""

    def __init__(self, network: Network, root: Path, secrets: Path, **head_settings: str) -> None:
        self.network = network
        self.root = root
        self.secrets = secrets
        self.head_settings = head_settings
        self.head: Host = network.add_host("head", root)
        self.workers: list[Host] = []
        self.head_node: subprocess.Popen[bytes] | None = None
        self.s3_requests = S3Requests()
        """Set by the tests to the S3 store's access log."""

    @property
    def url(self) -> str:
        return f"http://{self.head.address}:8000"

    def _environment(self, service: str, extra: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        command, environment = compose_service(service)
        env = {"PATH": os.environ["PATH"], **BASE_ENV, **environment, "NODE_OBJECT_STORE_BYTES": OBJECT_STORE_BYTES}
        return command, {**env, **extra}

    def _install_secrets(self, host: Host) -> None:
        shutil.copytree(self.secrets, host.secrets_dir, dirs_exist_ok=True)

    def start_head(self) -> None:
        self._install_secrets(self.head)
        command, env = self._environment("head", self.head_settings)
        self.head_node = self.head.spawn(command, env, self.root / "head.log", REPO)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.healthy():
            if self.head_node.poll() is not None:
                raise RuntimeError(f"the head exited ({self.head_node.returncode}); see {self.root / 'head.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the head was not healthy in {START_TIMEOUT_S}s; see {self.root / 'head.log'}")
            time.sleep(2)

    def stop_head(self, timeout_s: float = 180) -> tuple[int, list[str]]:
        """SIGTERM, as `docker compose stop` sends it: the platform drains, then the head's Ray node stops. Returns
        the exit code and the processes still on the head 30 s later (then killed, so the next start is clean)."""
        assert self.head_node is not None
        self.head_node.send_signal(signal.SIGTERM)
        code = self.head_node.wait(timeout_s)
        deadline = time.monotonic() + 30
        while self.head.pids() and time.monotonic() < deadline:
            time.sleep(1)
        leftovers = self.head.process_names()
        self.head.kill_all()
        return code, leftovers

    def add_worker(self, name: str, **settings: str) -> Host:
        host = self.network.add_host(name, self.root, {"head": self.head.address})
        self._install_secrets(host)
        command, env = self._environment("worker", settings)
        host.spawn(command, env, self.root / f"{name}.log", REPO)
        self.workers.append(host)
        return host

    def healthy(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.url}/health", timeout=5).status_code == 200
        return False

    def alive_nodes(self) -> int:
        """Ray nodes alive, as a driver on the head sees them."""
        _, env = self._environment("head", {})
        probe = "import ray; ray.init(logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
        env["RAY_ADDRESS"] = f"{self.head.address}:6379"
        output = self.head.run([sys.executable, "-c", probe], env, REPO)
        return int(output.strip().splitlines()[-1])

    def wait_for_nodes(self, count: int, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(subprocess.CalledProcessError, ValueError, IndexError):
                if self.alive_nodes() == count:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not reach {count} alive nodes in {timeout_s}s")
            time.sleep(3)


class S3Requests(logging.Handler):
    """The requests the S3 store answered, as (client address, method, path), from its access log: which host
    fetched what."""

    LINE = re.compile(r'^(\S+) - - \[[^\]]*\] "(\w+) (\S+) HTTP')

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if match := self.LINE.match(record.getMessage()):
            self.seen.append((match[1], match[2], match[3].split("?")[0]))

    def adapter_downloads(self) -> Counter[tuple[str, str]]:
        """How often each host fetched each adapter's manifest, which an engine host's cache does once per download."""
        downloads: Counter[tuple[str, str]] = Counter()
        for client, method, path in self.seen:
            if method == "GET" and (match := re.search(r"/adapters/([0-9a-f]{64})/manifest\.json$", path)):
                downloads[(client, match[1])] += 1
        return downloads


@contextlib.contextmanager
def stores(network: Network) -> Iterator[S3Requests]:
    """PostgreSQL at `postgres:5432` and S3 at `s3:9000` on the bridge, as compose.yaml names them, with the
    database and bucket its services make."""
    subnet = f"{network.prefix}.0/24"
    with postgres_server(network.address, port=5432, clients=subnet) as admin, s3_server(network.address, port=9000):
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute("CREATE ROLE platform LOGIN")
            connection.execute("CREATE DATABASE platform OWNER platform")
        client = boto3.client(
            "s3",
            endpoint_url=f"http://{network.address}:9000",
            aws_access_key_id="cluster",
            aws_secret_access_key="cluster",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="platform")
        requests = S3Requests()
        access_log = logging.getLogger("werkzeug")  # moto's server logs each request there
        access_log.setLevel(logging.INFO)
        access_log.addHandler(requests)
        try:
            yield requests
        finally:
            access_log.removeHandler(requests)


def make_secrets(folder: Path) -> Path:
    generate(folder)
    return folder
