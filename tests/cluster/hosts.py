"""Hosts on one machine: each a Linux network namespace with its own address on a private bridge, its own
hostname, and its own mount namespace in which a directory of its own is bound onto each path the platform
writes (`/data`, Ray's `/tmp/ray`), its own `/etc/hosts` and its own `/run/secrets`. No host sees another's
files; traffic stays on the bridge and loopback (the namespaces have no default route). Needs root, as CI has.

The services the hosts share (PostgreSQL, the S3 store) run in the machine's own namespace, listening on the
bridge's address, under the names compose.yaml gives them (`postgres`, `s3`) in every host's `/etc/hosts`."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import psutil

BOUND_PATHS = ("/data", "/tmp/ray", "/run/secrets", "/etc/hosts")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def namespaces_allowed() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("unshare") is None:
        return False
    probe = f"lp-probe-{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError:
        return False
    _ip("netns", "del", probe)
    return True


class Network:
    """A bridge in the machine's namespace, `10.<a>.<b>.1/24`, that the hosts' veth pairs join."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.bridge = f"lpbr{self.tag}"
        octets = bytes.fromhex(self.tag[:4])
        self.prefix = f"10.{200 + octets[0] % 50}.{octets[1]}"
        self.address = f"{self.prefix}.1"
        self.hosts: list[Host] = []

    def __enter__(self) -> Network:
        _ip("link", "add", "name", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return self

    def __exit__(self, *_: object) -> None:
        for host in reversed(self.hosts):
            host.remove()
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.bridge)

    def add_host(self, name: str, root: Path, names: dict[str, str] | None = None) -> Host:
        """A host `name` at the next address; `names` are further /etc/hosts entries (name -> address)."""
        host = Host(self, name, f"{self.prefix}.{10 + len(self.hosts)}", root / name)
        self.hosts.append(host)
        host.create({"postgres": self.address, "s3": self.address, **(names or {})})
        return host


class Host:
    def __init__(self, network: Network, name: str, address: str, root: Path) -> None:
        self.network = network
        self.name = name
        self.address = address
        self.root = root
        self.namespace = f"lp{network.tag}-{name}"
        self.veth = f"lv{network.tag}{len(network.hosts)}"
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def data_dir(self) -> Path:
        """What this host sees as /data."""
        return self.root / "data"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    def create(self, names: dict[str, str]) -> None:
        for folder in ("data", "ray", "secrets"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost", f"{self.address} {self.name}"]
        lines += [f"{address} {name}" for name, address in names.items()]
        (self.root / "hosts").write_text("\n".join(lines) + "\n")
        _ip("netns", "add", self.namespace)
        _ip("link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.namespace)
        _ip("link", "set", self.veth, "master", self.network.bridge, "up")
        _ip("-n", self.namespace, "addr", "add", f"{self.address}/24", "dev", "eth0")
        _ip("-n", self.namespace, "link", "set", "eth0", "up")
        _ip("-n", self.namespace, "link", "set", "lo", "up")

    def add_name(self, name: str, address: str) -> None:
        with (self.root / "hosts").open("a") as hosts:
            hosts.write(f"{address} {name}\n")

    def _wrapped(self, command: list[str], cwd: Path) -> list[str]:
        """`command` run in this host's network namespace and a mount namespace of its own, its files in place."""
        for path in ("/data", "/tmp/ray", "/run/secrets"):
            Path(path).mkdir(parents=True, exist_ok=True)  # mount points in the machine's tree; empty there
        sources = {"/data": "data", "/tmp/ray": "ray", "/run/secrets": "secrets", "/etc/hosts": "hosts"}
        mounts = " && ".join(f"mount --bind {shlex.quote(str(self.root / src))} {dst}" for dst, src in sources.items())
        script = f"hostname {self.name} && {mounts} && cd {shlex.quote(str(cwd))} && exec {shlex.join(command)}"
        unshare = ["unshare", "--mount", "--uts", "--propagation", "private"]  # its own files and hostname
        return ["ip", "netns", "exec", self.namespace, *unshare, "sh", "-c", script]

    def spawn(self, command: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
        """Starts `command` on this host, in a process group of its own."""
        with log.open("ab") as out:
            process = subprocess.Popen(
                self._wrapped(command, cwd), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes.append(process)
        return process

    def run(self, command: list[str], env: dict[str, str], cwd: Path, timeout_s: float = 120) -> str:
        """Runs `command` on this host to its end; its output, or CalledProcessError."""
        done = subprocess.run(
            self._wrapped(command, cwd), env=env, capture_output=True, text=True, timeout=timeout_s, check=True
        )
        return done.stdout

    def link_down(self) -> None:
        """The host drops off the network: nothing in or out."""
        _ip("-n", self.namespace, "link", "set", "eth0", "down")

    def link_up(self) -> None:
        _ip("-n", self.namespace, "link", "set", "eth0", "up")

    def kill_all(self) -> None:
        """SIGKILL every process of this host: its process groups, and whatever its processes started in groups
        of their own (found by network namespace)."""
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)

    def pids(self) -> list[int]:
        """Processes running in this host's network namespace."""
        try:
            listed = subprocess.run(["ip", "netns", "pids", self.namespace], capture_output=True, text=True, check=True)
        except subprocess.CalledProcessError:
            return []
        return [int(pid) for pid in listed.stdout.split()]

    def process_names(self) -> list[str]:
        names = []
        for pid in self.pids():
            with contextlib.suppress(psutil.Error):
                names.append(" ".join(psutil.Process(pid).cmdline()) or psutil.Process(pid).name())
        return names

    def cpu_seconds(self, *names: str) -> float:
        """CPU time used so far by this host's processes whose command line contains one of `names`."""
        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                if any(name in " ".join(process.cmdline()) for name in names):
                    times = process.cpu_times()
                    total += times.user + times.system
        return total

    def remove(self) -> None:
        self.kill_all()
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", self.namespace)
