"""How much the service lets one party do: failed logins per user name and per client address
(a lockout, 429 with Retry-After), password checks at once (each costs a 64 MiB argon2 hash; a
login that cannot get one soon is a 503), reports per device token. The counters are `limits`
moving windows in the storage the settings name (memory, or Redis for several workers)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import HTTPException, status
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from storage.settings import Settings


class Throttle:
    """The service's limits, built once per app from its settings."""

    def __init__(self, settings: Settings):
        self._windows = MovingWindowRateLimiter(storage_from_string(settings.rate_limit_storage))
        self.account: RateLimitItem = parse(settings.login_account_limit)
        self.address: RateLimitItem = parse(settings.login_address_limit)
        self.reports: RateLimitItem = parse(settings.device_report_limit)
        # waited for on the event loop: a login waiting for a check holds no worker thread,
        # so a flood of them cannot starve the pages of threads
        self._checks = asyncio.BoundedSemaphore(settings.login_concurrent_checks)
        self._check_wait_s = settings.login_check_wait_s

    def refuse_login(self, name: str, address: str) -> None:
        """429 if `name` or `address` has used up its failed logins; nothing is counted."""
        for item, key, what in ((self.account, ("login-name", name), f"user {name[:64]!r}"),
                                (self.address, ("login-address", address), "this address")):
            if not self._windows.test(item, *key):
                raise _too_many(self._retry_after_s(item, key),
                                f"too many failed logins for {what}; try again later")

    def login_failed(self, name: str, address: str) -> bool:
        """Count a failed login; True if it used up the last try of `name` or `address`."""
        self._windows.hit(self.account, "login-name", name)
        self._windows.hit(self.address, "login-address", address)
        return not (self._windows.test(self.account, "login-name", name)
                    and self._windows.test(self.address, "login-address", address))

    def login_succeeded(self, name: str) -> None:
        """A right password clears the user name's failures (the address keeps its count)."""
        self._windows.clear(self.account, "login-name", name)

    @asynccontextmanager
    async def password_check(self) -> AsyncIterator[None]:
        """One of the few password checks allowed at once, else (after a short wait) 503."""
        try:
            async with asyncio.timeout(self._check_wait_s):
                await self._checks.acquire()
        except TimeoutError:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                "too many logins at once; try again in a moment",
                                headers={"Retry-After": "1"}) from None
        try:
            yield
        finally:
            self._checks.release()

    def count_report(self, device_id: int) -> None:
        """Count one report of `device_id`, or 429 if it has sent its share."""
        key = ("device-report", str(device_id))
        if not self._windows.hit(self.reports, *key):
            raise _too_many(self._retry_after_s(self.reports, key),
                            f"device {device_id} sent more than {self.reports} reports")

    def _retry_after_s(self, item: RateLimitItem, key: tuple[str, ...]) -> int:
        reset_at = self._windows.get_window_stats(item, *key).reset_time
        return max(1, math.ceil(reset_at - time.time()))


def _too_many(retry_after_s: int, detail: str) -> HTTPException:
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail,
                         headers={"Retry-After": str(retry_after_s)})
