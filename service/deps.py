"""What routes depend on: the catalog, a read session, the device behind a bearer token, the
service's limits, the client's address, and the one type of a record id that comes in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from annotated_types import Ge, Le
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from device.manifest import MAX_ID
from service.throttle import Throttle
from storage.catalog import Catalog
from storage.devices import DeviceView, authenticate

RecordId = Annotated[int, Ge(1), Le(MAX_ID)]
"""A registry id from a path, a query, a form or a body: outside 1..2**31-1 a 422, never a
query the database would refuse."""

bearer = HTTPBearer(auto_error=False, description="the device token from `shelfcast devices enroll`")


def get_catalog(request: Request) -> Catalog:
    return request.app.state.catalog


CatalogDep = Annotated[Catalog, Depends(get_catalog)]


def get_session(catalog: CatalogDep) -> Iterator[Session]:
    """A session for reading; writes go through `catalog.unit_of_work()`."""
    with catalog.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def current_device(session: SessionDep,
                   credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
                   ) -> DeviceView:
    """The enrolled, not revoked device whose token the request carries, else 401."""
    device = authenticate(session, credentials.credentials) if credentials else None
    if device is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked device token",
                            headers={"WWW-Authenticate": "Bearer"})
    return DeviceView.of(device)


CurrentDevice = Annotated[DeviceView, Depends(current_device)]


async def get_throttle(request: Request) -> Throttle:
    return request.app.state.throttle


ThrottleDep = Annotated[Throttle, Depends(get_throttle)]


def client_address(request: Request) -> str:
    """The client's address as uvicorn reports it: the TCP peer's, or X-Forwarded-For's only
    when that peer is a configured trusted proxy (`trusted_proxies`)."""
    return request.client.host if request.client else "unknown"
