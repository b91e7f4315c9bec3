"""Ray Serve's data plane as in its throughput-optimized mode, minus its direct ingress (gateway/listener.py
takes that part, because Serve's cannot share or reliably rebind SERVE_PORT): gRPC between the proxy, the
gateway and the engines instead of Ray object references, and user code and request routing on each
replica's own event loop. Together they take about 7 ms off a request's time to first token on a 2-core
machine (the platform's own share at c=1 fell from 20 to 13 ms).

Serve reads these when `ray.serve` is first imported, and a handle keeps the transport of the process that
made it, so `apply` must run before that import in the launcher; Ray's processes inherit the environment.
A variable already set wins."""

from __future__ import annotations

import os

DATA_PLANE = {
    "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
}


def apply() -> None:
    for key, value in DATA_PLANE.items():
        os.environ.setdefault(key, value)
