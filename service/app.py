"""The FastAPI application: `create_app(catalog)` wires the device API, the release channel
folder (read-only static files), the ops console (pages and their JSON twins), the API docs
(for logged-in users), the limits and security headers, and how failures map to HTTP
statuses; `server_options` is how `shelfcast serve` runs it under uvicorn."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from service import api_docs, metrics
from service.api import router
from service.console import api as console_api
from service.console import pages as console_pages
from service.headers import SecurityHeaders
from service.inputs import PlainUrls
from service.throttle import Throttle
from storage.catalog import Catalog
from storage.channel import SERVED_PATH, check_servable
from storage.errors import Conflict, NotFound, RegistryError, Unavailable
from storage.settings import Settings

MAX_BODY_BYTES = 64 * 1024


def create_app(catalog: Catalog) -> FastAPI:
    """The service over `catalog`'s registry and release folder."""
    app = FastAPI(title="Shelfcast", docs_url=None, openapi_url=None, redoc_url=None)
    app.state.catalog = catalog
    app.state.throttle = Throttle(catalog.settings)
    app.include_router(router)
    app.include_router(api_docs.router)
    app.include_router(console_api.router)
    app.include_router(console_pages.router)
    app.include_router(metrics.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    # StaticFiles resolves each path inside the folder and refuses anything outside it; it
    # needs the folder to exist, and an empty channel is a valid one (every request a 404)
    catalog.releases.mkdir(parents=True, exist_ok=True)
    check_servable(catalog.releases, home=catalog.home, secrets=_secrets(catalog))
    app.mount("/releases", ChannelFiles(directory=catalog.releases), name="releases")
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(metrics.RequestMetrics)
    app.add_middleware(PlainUrls)
    app.add_middleware(SecurityHeaders)  # the outermost: on every answer, refusals too
    _add_error_handlers(app)
    return app


def server_options(settings: Settings) -> dict:
    """uvicorn's options for the client address: X-Forwarded-For and -Proto are believed only
    from `trusted_proxies` (uvicorn would otherwise trust 127.0.0.1 by default)."""
    if not settings.trusted_proxies:
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": ",".join(settings.trusted_proxies)}


def _secrets(catalog: Catalog) -> list[Path]:
    """Files that must never be served: the signing key, the registry's SQLite file, Prefect's
    home."""
    secrets = [Path(catalog.signing_key), Path(catalog.settings.prefect_home)]
    url = make_url(catalog.settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        secrets.append(Path(url.database))
    return secrets


class ChannelFiles(StaticFiles):
    """The release folder, read-only, and only the paths a channel has (`SERVED_PATH`): any
    other file that lands in it (a key, a database, a backup) is a 404."""

    async def get_response(self, path: str, scope):
        if not SERVED_PATH.fullmatch(path.replace("\\", "/")):
            raise HTTPException(status_code=status.HTTP_404_NOT_FOUND)
        return await super().get_response(path, scope)


def _add_error_handlers(app: FastAPI) -> None:
    def reply(code: int):
        async def handler(_request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc).splitlines()[0][:400]}, status_code=code)
        return handler

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException):
        """The console's pages answer a refusal with a page a person reads; the API, JSON."""
        path = request.url.path
        if path.startswith("/api/") or (path.startswith("/releases/") and request.method == "GET"):
            return await http_exception_handler(request, exc)
        return console_pages.templates.TemplateResponse(
            request, "error.html", {"user": None, "page": {}, "code": exc.status_code,
                                    "detail": exc.detail}, status_code=exc.status_code,
            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(part) for part in e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        reason = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        return JSONResponse({"detail": reason[:1000], "errors": errors[:20]},
                            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    # the device that authenticated was revoked before its report was written: as unknown
    app.add_exception_handler(NotFound, reply(status.HTTP_401_UNAUTHORIZED))
    app.add_exception_handler(Conflict, reply(status.HTTP_409_CONFLICT))
    app.add_exception_handler(RegistryError, reply(status.HTTP_422_UNPROCESSABLE_CONTENT))
    app.add_exception_handler(Unavailable, reply(status.HTTP_503_SERVICE_UNAVAILABLE))
    app.add_exception_handler(OperationalError, lambda _r, _e: JSONResponse(
        {"detail": "the registry is unavailable"}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE))


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` with 413, whether declared (Content-Length) or
    streamed (chunked), before any route reads them."""

    def __init__(self, app, *, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send) -> None:
        response = JSONResponse({"detail": f"request body larger than {self.max_bytes} bytes"},
                                status_code=status.HTTP_413_CONTENT_TOO_LARGE)
        await response(scope, receive, send)
