"""Notifications of alerts through Apprise (Slack, Teams, mailto, json:// webhooks ...).

One attempt per URL here; retries belong to the Prefect task that calls this, and an alert
that could not be delivered stays un-notified in the registry and is sent again later.
Credentials in URLs never appear in messages: every URL shown is masked first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]*@)")


def mask_url(url: str) -> str:
    """`url` with its user, password, path and query hidden: a notification URL often carries
    its credentials in the path or even in the host part (slack://TokenA/TokenB/TokenC), so
    only the scheme and a host that looks like a host name (a dot, or localhost) survive."""
    masked = _USERINFO.sub(lambda m: f"{m['scheme']}***@", url, count=1)
    scheme, sep, rest = masked.partition("://")
    if not sep:
        return "***"
    host, slash, _ = rest.partition("/")
    userinfo, at, hostport = host.rpartition("@")
    name = hostport.split(":")[0]
    if not ("." in name or name == "localhost"):
        hostport = "***"
    return f"{scheme}://{userinfo}{at}{hostport}{'/***' if slash or '?' in rest else ''}"


def scrub_secrets(text: str, urls: list[str]) -> str:
    """`text` with every configured notification URL in it replaced by its masked form."""
    for url in sorted(urls, key=len, reverse=True):
        if url:
            text = text.replace(url, mask_url(url))
    return text


@dataclass(frozen=True)
class Notification:
    title: str
    body: str


def alert_notification(alert) -> Notification:
    """What ops read for an alert: severity and kind in the title, the message, the report
    link, how to acknowledge it and how to silence alerts like it for a while."""
    body = alert.message + (f"\nreport: {alert.link}" if alert.link else "") \
        + f"\nacknowledge: shelfcast alerts ack {alert.id} --by NAME" \
        + f"\nsilence: shelfcast alerts silence {alert.kind} --for 4h --reason WHY --by NAME"
    return Notification(f"[shelfcast {alert.severity}] {alert.kind.replace('_', ' ')}", body)


def send(url: str, notification: Notification) -> bool:
    """One delivery attempt to one Apprise URL; False when it was not accepted (or the URL is
    not usable), never an exception that would echo the URL."""
    import apprise

    notifier = apprise.Apprise()
    try:
        if not notifier.add(url):
            return False
        return bool(notifier.notify(title=notification.title, body=notification.body))
    except Exception:  # noqa: BLE001 - a plug-in's own error text may contain the URL
        return False


def deliver(alerts, urls: list[str]) -> list[bool]:
    """One attempt to send each alert to every URL; per alert, True when every URL took it."""
    return [all([send(url, alert_notification(alert)) for url in urls]) for alert in alerts]
