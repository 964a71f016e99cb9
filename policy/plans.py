"""What an action will do, said before it is done: the record a confirmation page and a
`dry_run` answer show. Storage computes it with the same code that then acts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Change:
    """One group of stores or devices and what happens to it."""

    who: str  # "canary store 1 (devices 4, 7)"
    gets: str  # "version 12 (lstm16, 3,456 B, MAPE 12.30 %)"
    replacing: str  # what it runs now ("version 9 (...)", "nothing")
    when: str  # "on its next sync", "after 3 clean canary nights and an approval"


@dataclass(frozen=True)
class ActionPlan:
    """An action's preview: one headline, the changes per group, and what else follows."""

    action: str  # promote | rollback | approval_policy | revoke
    headline: str
    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
