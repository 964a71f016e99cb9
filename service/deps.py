"""What routes depend on: the catalog, a read session, and the device behind a bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from storage.catalog import Catalog
from storage.devices import DeviceView, authenticate

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
