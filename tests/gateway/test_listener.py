import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Litestar, get
from litestar.response import Stream

from gateway.listener import Listener
from tests.e2e.platform import free_port


@get("/")
async def hello() -> str:
    return "hello"


@get("/slow")
async def slow() -> Stream:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(5):
            await asyncio.sleep(0.1)
            yield f"{index}\n".encode()

    return Stream(chunks())


APP = Litestar([hello, slow])


@pytest.fixture
def port() -> int:
    return free_port()


def listener(port: int) -> Listener:
    return Listener(APP, "127.0.0.1", port, shutdown_timeout_s=5)


async def test_serves_the_app(port: int) -> None:
    serving = listener(port)
    await serving.start()
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/")).text == "hello"
    await serving.stop()


async def test_replicas_on_one_node_share_the_port(port: int) -> None:
    first, second = listener(port), listener(port)
    await first.start()
    await second.start()
    await first.stop()
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/")).text == "hello"
    await second.stop()


async def test_a_replacement_binds_while_the_old_connections_are_in_time_wait(port: int) -> None:
    old = listener(port)
    await old.start()
    async with httpx.AsyncClient() as client:
        await client.get(f"http://127.0.0.1:{port}/")
        await old.stop()  # closes the kept-alive connection from the server's side: TIME_WAIT
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    replacement = listener(port)
    await replacement.start()
    await replacement.stop()


async def test_stop_lets_an_in_flight_stream_finish(port: int) -> None:
    serving = listener(port)
    await serving.start()
    async with httpx.AsyncClient() as client:
        request = asyncio.create_task(client.get(f"http://127.0.0.1:{port}/slow"))
        await asyncio.sleep(0.15)
        await serving.stop()
        assert (await request).text == "0\n1\n2\n3\n4\n"


async def test_a_port_held_without_reuse_is_an_error(port: int) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(OSError):
            await listener(port).start()
