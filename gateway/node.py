"""`python -m gateway.node head|worker`: one host of a platform's Ray cluster, started the way Ray's on-premises
guide does it (`ray start --head`, `ray start --address=...`), then, on the head, the platform itself
(`RAY_ADDRESS=... python -m gateway`). compose.yaml, the KubeRay manifest and the multi-host tests all start hosts
with this command, so what they run is one thing.

Each host is marked with a custom resource naming its role (`head` or `worker`): the platform pins its control
plane and gateway to the head and lets engine replicas and trainers go wherever the resource plan and Ray put
them. Ray's token authentication is inherited from the environment (`RAY_AUTH_MODE=token` with `RAY_AUTH_TOKEN`
or `RAY_AUTH_TOKEN_PATH`, from a secret). SIGTERM stops the platform first (it drains), then this host's Ray
processes only: never `ray stop`, which stops every Ray process of the machine."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Literal

from ray._common.utils import get_ray_address_file

from engines.core.settings import Settings, SettingsError
from engines.resources import HEAD_RESOURCE

Role = Literal["head", "worker"]
WORKER_RESOURCE = "worker"
GCS_PORT = 6379
RAY_READY_TIMEOUT_S = 120.0
WORKER_RETRY_S = 5.0
STOP_GRACE_S = 120.0


def node_ip(settings: Settings, head: str | None) -> str:
    """NODE_IP_ADDRESS, else the address this host reaches the head from (or its hostname's). Ray's own guess
    routes toward a public address, which a private network may not have."""
    if settings.node_ip_address:
        return settings.node_ip_address
    if head:
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((head.rsplit(":", 1)[0], GCS_PORT))
            return probe.getsockname()[0]
    return socket.gethostbyname(socket.gethostname())


def ray_start_command(role: Role, settings: Settings, *, ip: str, head_address: str | None) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",  # the `ray` command of this environment
        "start",
        "--block",
        f"--node-ip-address={ip}",
        f"--resources={json.dumps({HEAD_RESOURCE if role == 'head' else WORKER_RESOURCE: 1})}",
        "--disable-usage-stats",
    ]
    if role == "head":
        command += ["--head", f"--port={GCS_PORT}", "--include-dashboard=false"]
    else:
        if not head_address:
            raise SettingsError("A worker host needs RAY_ADDRESS, the head's address (host:6379)")
        command.append(f"--address={head_address}")
    if settings.node_cpus:
        command.append(f"--num-cpus={settings.node_cpus}")
    if settings.node_object_store_bytes:
        command.append(f"--object-store-memory={settings.node_object_store_bytes}")
    return command


class Host:
    """This host's Ray node (and, on the head, the platform), as child process groups it stops on exit."""

    def __init__(self, role: Role, settings: Settings) -> None:
        self.role = role
        self.settings = settings
        self.head_address = None if role == "head" else os.environ.get("RAY_ADDRESS")
        self.ip = node_ip(settings, self.head_address)
        self.stop = threading.Event()
        self.ray: subprocess.Popen[bytes] | None = None
        self.platform: subprocess.Popen[bytes] | None = None

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.stop.set())
        try:
            if self.role == "worker":
                return self._run_worker()
            return self._run_head()
        finally:
            self._stop_platform()
            _stop_group(self.ray)

    def _start_ray(self) -> subprocess.Popen[bytes]:
        command = ray_start_command(self.role, self.settings, ip=self.ip, head_address=self.head_address)
        print(f"node: ray {' '.join(command[4:])}", flush=True)
        env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
        return subprocess.Popen(command, env=env, start_new_session=True)

    def _run_worker(self) -> int:
        """Joins the head, and joins it again whenever this host's Ray node ends before a stop (the head was
        not up yet, or it restarted)."""
        while not self.stop.is_set():
            self.ray = self._start_ray()
            while self.ray.poll() is None and not self.stop.wait(1.0):
                pass
            if not self.stop.is_set():
                print(f"node: Ray exited ({self.ray.returncode}); joining again in {WORKER_RETRY_S:g} s", flush=True)
                _stop_group(self.ray)
                self.stop.wait(WORKER_RETRY_S)
        return 0

    def _run_head(self) -> int:
        # `ray start` writes the cluster's address there once the head is up; a stale one would say it already is.
        address_file = Path(get_ray_address_file(None))
        address_file.unlink(missing_ok=True)
        self.ray = self._start_ray()
        deadline = time.monotonic() + RAY_READY_TIMEOUT_S
        while not address_file.exists():
            if self.ray.poll() is not None or time.monotonic() > deadline or self.stop.wait(0.5):
                print("node: the head's Ray node did not start", file=sys.stderr, flush=True)
                return 1
        env = {**os.environ, "RAY_ADDRESS": f"{self.ip}:{GCS_PORT}"}
        self.platform = subprocess.Popen([sys.executable, "-m", "gateway"], env=env, start_new_session=True)
        while not self.stop.wait(1.0):
            if self.platform.poll() is not None:
                return self.platform.returncode
            if self.ray.poll() is not None:
                print("node: the head's Ray node exited", file=sys.stderr, flush=True)
                return 1
        return 0

    def _stop_platform(self) -> None:
        """SIGTERM: the platform drains its requests and exits by itself."""
        if self.platform is not None and self.platform.poll() is None:
            self.platform.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.platform.wait(STOP_GRACE_S)
        _stop_group(self.platform)


def _stop_group(process: subprocess.Popen[bytes] | None) -> None:
    """Stops a child's whole process group: `ray start --block` leaves its raylet and workers in it."""
    if process is None:
        return
    for signum, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait_s)
            if not _group_alive(process.pid):
                return


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("head", "worker"):
        print("usage: python -m gateway.node head|worker", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
        role: Role = "head" if args[0] == "head" else "worker"
        return Host(role, settings).run()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
