"""The API's documentation, only for a logged-in console user (viewer or above): the OpenAPI
schema at /api/openapi.json and Swagger UI at /api/docs, under a policy that allows Swagger's
files and its one inline script (by its hash) and nothing else inline."""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from service.console.auth import Reader

router = APIRouter(prefix="/api", include_in_schema=False)
SCHEMA_URL = "/api/openapi.json"
SWAGGER_FILES = "https://cdn.jsdelivr.net"  # where FastAPI's Swagger UI page loads its bundle


@router.get("/openapi.json")
def openapi_schema(_: Reader, request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def swagger_ui(_: Reader) -> HTMLResponse:
    page = get_swagger_ui_html(openapi_url=SCHEMA_URL, title="Shelfcast API")
    page.headers["Content-Security-Policy"] = _policy_for(page.body.decode())
    return page


def _policy_for(html: str) -> str:
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL))
    return (f"default-src 'self'; script-src 'self' {SWAGGER_FILES} {hashes}; "
            f"style-src 'self' {SWAGGER_FILES}; img-src 'self' data: https://fastapi.tiangolo.com; "
            "base-uri 'none'; object-src 'none'; frame-ancestors 'none'")
