"""The web console: static pages at `/` and `/console/`, a browser client of the public API and nothing more
(no private endpoints: it signs in with an API key like any other client). Swagger UI, for the API page, is
installed from npm by `make` into `gateway/console/node_modules`; nothing is fetched from a CDN."""

from __future__ import annotations

from pathlib import Path

from litestar import Response, get
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

CONSOLE = Path(__file__).resolve().parent.parent / "console"
STATIC = CONSOLE / "static"
SWAGGER_UI = CONSOLE / "node_modules" / "swagger-ui-dist"
PREFIX = "/console"


@get("/", include_in_schema=False, media_type="text/html")
async def console_index() -> Response[bytes]:
    # no-cache: a new release's pages are picked up at the next load; the assets are small.
    return Response((STATIC / "index.html").read_bytes(), media_type="text/html", headers={"Cache-Control": "no-cache"})


def console_routes() -> list[ControllerRouterHandler]:
    routes: list[ControllerRouterHandler] = [
        console_index,
        create_static_files_router(
            path=PREFIX, directories=[STATIC], include_in_schema=False, cache_control=None, name="console"
        ),
    ]
    if SWAGGER_UI.is_dir():  # without it (npm not run), the API page says how to install it
        routes.append(
            create_static_files_router(
                path=f"{PREFIX}/vendor/swagger-ui", directories=[SWAGGER_UI], include_in_schema=False, name="swagger-ui"
            )
        )
    return routes


def is_console_path(path: str) -> bool:
    """The console's pages and assets need no key: what they show comes from the API, which does."""
    return path == "/" or path.startswith(PREFIX + "/")
