"""Search, sort and paging of the console's lists: one set of query parameters (`q`, `sort`,
`page`, `per_page`) for every list page and its JSON twin, and the links that change one of
them while keeping the others."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import HTTPException, Query, status

PER_PAGE = (25, 50, 100, 200)
MAX_SEARCH_CHARS = 100


@dataclass(frozen=True)
class Listing:
    """What a list page was asked for: a search text, a sort key and direction, a page."""

    search: str | None
    sort: str
    descending: bool
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def paging(self, total: int) -> dict:
        """What the page and its JSON twin say about the page: "page 2 of 7", the sort."""
        pages = max(1, math.ceil(total / self.per_page))
        return {"page": self.page, "pages": pages, "per_page": self.per_page, "total": total,
                "q": self.search or "", "sort": ("-" if self.descending else "") + self.sort,
                "previous": self.page - 1 if self.page > 1 else None,
                "next": self.page + 1 if self.page < pages else None}


def listing(sorts: tuple[str, ...], *, default: str) -> Callable[..., Listing]:
    """A FastAPI dependency reading a list's query parameters: `q` (search), `sort` (one of
    `sorts`, a leading "-" for descending; `default` when absent), `page` (from 1) and
    `per_page` (one of PER_PAGE)."""
    def read(q: Annotated[str | None, Query(max_length=MAX_SEARCH_CHARS)] = None,
             sort: Annotated[str | None, Query(max_length=40)] = None,
             page: Annotated[int, Query(ge=1, le=100_000)] = 1,
             per_page: Annotated[int, Query()] = PER_PAGE[1]) -> Listing:
        asked = sort or default
        key = asked.removeprefix("-")
        if key not in sorts:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                f"sort must be one of {', '.join(sorts)} (a leading - for "
                                f"descending), got {asked!r}")
        if per_page not in PER_PAGE:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                f"per_page must be one of {', '.join(map(str, PER_PAGE))}, "
                                f"got {per_page}")
        return Listing(search=(q or "").strip() or None, sort=key,
                       descending=asked.startswith("-"), page=page, per_page=per_page)
    return read


def with_params(query: Mapping[str, str], **changes: object) -> str:
    """The query string of `query` with `changes` applied (None or "" drops a parameter): a
    link that changes the page or the sort and keeps the filters."""
    merged = {**dict(query), **changes}
    return "?" + urlencode({k: v for k, v in merged.items() if v not in (None, "")})


def sort_link(query: Mapping[str, str], paging: dict, key: str) -> tuple[str, str]:
    """A column header's link (sorted by `key`; again: the other way round; back to page 1)
    and its arrow when the list is sorted by it."""
    current = paging["sort"]
    descending = current == key  # a second click on an ascending column sorts it descending
    arrow = "▲" if current == key else "▼" if current == f"-{key}" else ""
    return with_params(query, sort=("-" if descending else "") + key, page=None), arrow
