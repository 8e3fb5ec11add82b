"""Keyset pagination, the one way every listing pages (alert history, deliveries, the audit log,
incidents): newest first, ``?before=`` the id the previous page ended with, ``?limit=`` the page
size; the answer's ``next`` is ``{"before": id}`` (with ``href``, the next page's URL, where given)
while a page came back full, and null after the last.

Ids, not offsets: a page stays put while new rows arrive, and the store seeks by its primary key.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Protocol

from pydantic import Field

from monitoring.api.contract import Checked, Document, whole_number

# The largest id an integer primary key holds (BIGINT on PostgreSQL, INTEGER on SQLite): a larger
# one in a request is refused as a 400, not passed on to the store as an overflow.
MAX_ID = 2**63 - 1

# ?before=: only rows with a smaller id.
Before = Annotated[int | None, whole_number(1, MAX_ID)]


def page_size(maximum: int) -> Checked:
    """?limit=: a whole number from 1 to ``maximum``."""
    return whole_number(1, maximum)


class NextPage(Document):
    before: int = Field(description="Pass as before= for the next page.")
    href: str | None = Field(None, description="The next page's URL, where the listing gives it.")


class Keyed(Protocol):
    @property
    def id(self) -> int | None: ...


def next_page(page: Sequence[Keyed], limit: int, href: Callable[[int], str] | None = None) -> dict[str, Any] | None:
    """``next`` of a page: where the following one starts, or None after a page that was not full."""
    if len(page) < limit or not page or page[-1].id is None:
        return None
    before = page[-1].id
    return {"before": before, "href": href(before)} if href is not None else {"before": before}
