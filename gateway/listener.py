"""The gateway replica's own HTTP server on SERVE_PORT, so that requests skip Ray Serve's proxy.

Behind the proxy, every request and every streamed chunk crosses one more process. At 32 concurrent
streams on 2 cores, 57-98 ms of the time to first token passed outside the gateway (25-38 ms without it). So on
a cluster the launcher starts, each gateway replica serves SERVE_PORT itself, with uvicorn on the
replica's own event loop, as Serve's proxy would. Serve's proxy still runs, on another port, and carries
no traffic.

The socket is opened with SO_REUSEPORT, so several gateway replicas on a node share the port (the kernel
spreads connections between them). It is also opened with SO_REUSEADDR, so a replica that replaces a
killed one binds at once, even while the dead one's connections are in TIME_WAIT. Serve's own direct
ingress sets neither, and it never hands out again a port it once failed to bind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import uvicorn
from litestar.types import ASGIApp

# Serve's proxy default: clients that pool connections (the openai SDK) keep them that long.
KEEP_ALIVE_TIMEOUT_S = 90


class Listener:
    """Serves `app` on `host:port` from the running event loop, from `start` until `stop`."""

    def __init__(self, app: ASGIApp, host: str, port: int, *, shutdown_timeout_s: float) -> None:
        self._app, self._host, self._port = app, host, port
        self._shutdown_timeout_s = shutdown_timeout_s
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Binds the port and returns once the server accepts connections (raises if it cannot)."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        # uvicorn's start-up and shutdown lines would go to the replica's log at every start.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        config = uvicorn.Config(
            self._app,
            lifespan="off",  # Serve has run the app's lifespan already
            access_log=False,  # the gateway writes its own (gateway/observability.py)
            log_config=None,
            timeout_keep_alive=KEEP_ALIVE_TIMEOUT_S,
            timeout_graceful_shutdown=self._shutdown_timeout_s,
        )
        server = uvicorn.Server(config)
        # Signals belong to Ray's worker process, not to this server.
        server.capture_signals = contextlib.nullcontext
        self._server = server
        self._task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        while not server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError(f"the listener on {self._host}:{self._port} stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stops accepting, lets in-flight requests finish (up to the shutdown timeout), then returns."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
