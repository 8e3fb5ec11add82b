"""Inhibition: while a source alert fires, the target alerts it explains are not sent.

An inhibition rule has source matchers, target matchers and ``equal`` labels (which must have
the same value on both, e.g. ``host``). By default "Database unavailable" inhibits "Slow API
response" and "High error rate": with the database down, slow and failing requests are
symptoms, and the page should be about the cause. The rules are changed with
``action=update_inhibitions`` (stored, audited with before and after).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from monitoring.alerts.admin import Actor, InvalidInhibitions
from monitoring.alerts.matchers import Matcher, matches_all, parse_matcher, parse_matchers
from monitoring.alerts.matchers import to_json as matchers_json
from monitoring.alerts.rules import LABEL_NAME
from monitoring.clock import Clock
from monitoring.security.audit import CONFIG_CHANGE, AuditLog
from monitoring.store.alerts_tables import alert_settings
from monitoring.store.database import Store

SETTING = "inhibitions"
MAX_RULES = 50
FIELDS = ("source", "target", "equal")


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()

    def inhibits(self, source: Mapping[str, str], target: Mapping[str, str]) -> bool:
        return (
            matches_all(self.source, source)
            and matches_all(self.target, target)
            and all(source.get(label, "") == target.get(label, "") for label in self.equal)
        )

    def to_json(self) -> dict[str, Any]:
        return {"source": matchers_json(self.source), "target": matchers_json(self.target), "equal": list(self.equal)}


DEFAULT_INHIBITIONS: tuple[InhibitRule, ...] = (
    InhibitRule(
        source=(parse_matcher('alertname="DatabaseUnavailable"'),),
        target=(parse_matcher('alertname=~"SlowApiResponse|HighErrorRate"'),),
    ),
)


def parse_inhibitions(raw: Any) -> tuple[InhibitRule, ...]:
    """A JSON list of {"source": [...], "target": [...], "equal": [...]}; InvalidInhibitions names each bad item."""
    if not isinstance(raw, list) or len(raw) > MAX_RULES:
        raise InvalidInhibitions([{"field": "inhibitions", "message": f"must be a list of up to {MAX_RULES} rules"}])
    problems: list[dict[str, str]] = []
    rules = []
    for index, item in enumerate(raw):
        where = f"inhibitions[{index}]"
        if not isinstance(item, dict):
            problems.append({"field": where, "message": "must be an object with source, target and equal"})
            continue
        for unknown in sorted(set(item) - set(FIELDS), key=str):
            problems.append({"field": f"{where}.{str(unknown)[:40]}", "message": "is not a field; fields: "
                             + ", ".join(FIELDS)})
        parsed: dict[str, Any] = {}
        for name in ("source", "target"):
            try:
                parsed[name] = parse_matchers(item.get(name), required=True)
            except ValueError as exc:
                problems.append({"field": f"{where}.{name}", "message": str(exc)})
        equal = item.get("equal", [])
        if not isinstance(equal, list) or not all(isinstance(e, str) and LABEL_NAME.fullmatch(e) for e in equal):
            problems.append({"field": f"{where}.equal", "message": "must be a list of label names"})
        elif len(parsed) == 2:
            rules.append(InhibitRule(parsed["source"], parsed["target"], tuple(equal)))
    if problems:
        raise InvalidInhibitions(problems)
    return tuple(rules)


def inhibited_by(
    rules: Iterable[InhibitRule], target: Mapping[str, str], fingerprint: str,
    firing: Iterable[tuple[str, Mapping[str, str]]],
) -> str | None:
    """The fingerprint of a firing alert that inhibits ``target`` (never itself), or None."""
    candidates = [(fp, labels) for fp, labels in firing if fp != fingerprint]
    for rule in rules:
        for source_fingerprint, source_labels in candidates:
            if rule.inhibits(source_labels, target):
                return source_fingerprint
    return None


class Inhibitions:
    """The inhibition rules in force: the defaults until changed through the API."""

    def __init__(self, store: Store, clock: Clock, audit: AuditLog) -> None:
        self.store = store
        self.clock = clock
        self.audit = audit

    def rules(self, conn: Connection | None = None) -> tuple[InhibitRule, ...]:
        if conn is None:
            with self.store.read() as read_conn:
                return self.rules(read_conn)
        stored = conn.execute(select(alert_settings.c.value).where(alert_settings.c.name == SETTING)).scalar()
        return DEFAULT_INHIBITIONS if stored is None else parse_inhibitions(stored)

    def replace(self, raw: Any, actor: Actor) -> tuple[tuple[InhibitRule, ...], tuple[InhibitRule, ...]]:
        """Replace the whole list; returns (before, after)."""
        after = parse_inhibitions(raw)
        now = self.clock.now()
        value = [rule.to_json() for rule in after]
        with self.store.write() as conn:
            before = self.rules(conn)
            conn.execute(
                self.store.insert(alert_settings)
                .values(name=SETTING, value=value, updated_at=now, updated_by=actor.who[:64])
                .on_conflict_do_update(index_elements=["name"],
                                       set_={"value": value, "updated_at": now, "updated_by": actor.who[:64]})
            )
            self.audit.record(
                CONFIG_CHANGE, actor.who, "alerts.update_inhibitions", client_ip=actor.client_ip, path=actor.path,
                conn=conn, detail={"before": [r.to_json() for r in before], "after": [r.to_json() for r in after]},
            )
        return before, after
