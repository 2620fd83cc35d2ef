"""People, roles and grants: who may act, granted and revoked by an admin, each in the trail.

The acting person is the database login (``session_user``) on PostgreSQL, and the name in
``LICENSING_USER`` on the embedded profile, which trusts the local account (whoever can run
the command as that user can also edit the SQLite file). On PostgreSQL the checks below run in
the database (migration 0010's functions), so they hold against direct SQL too; the Python
checks here are the embedded profile's.

Bootstrapping: while no one holds ``admin``, anyone may grant ``admin`` (and only ``admin``),
recorded in the audit trail as ``bootstrap``. The last admin cannot be revoked, so the
repository never falls back to that state once it has left it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from licensing_pipeline.governance import audit_trail, pg_workflow
from licensing_pipeline.governance.tables import ROLES, audit_log, people, role_grants


class AccessRefused(Exception):
    """An action the acting person may not take; the message says what and why in one line."""


def now_utc(at: datetime | None) -> datetime:
    return (at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)


def acting_person(connection: sa.Connection, local_user: str | None) -> str:
    """Who is acting: the login on PostgreSQL, ``LICENSING_USER`` on the embedded profile."""
    if connection.dialect.name == "postgresql":
        return str(connection.execute(sa.text("SELECT session_user")).scalar_one())
    if not local_user:
        raise AccessRefused(
            "no acting person: set LICENSING_USER (the embedded profile acts as the person "
            "it names)"
        )
    return local_user


def _active(person: str | None = None, role: str | None = None) -> sa.Select[Any]:
    query = sa.select(role_grants).where(role_grants.c.revoked_at.is_(None))
    if person is not None:
        query = query.where(role_grants.c.person_id == person)
    if role is not None:
        query = query.where(role_grants.c.role == role)
    return query


def roles_of(connection: sa.Connection, person: str) -> set[str]:
    return {r.role for r in connection.execute(_active(person))}


def _admins(connection: sa.Connection) -> int:
    return len(connection.execute(_active(role="admin")).all())


def _known(connection: sa.Connection, person: str) -> bool:
    query = sa.select(people.c.person_id).where(people.c.person_id == person)
    return connection.execute(query).first() is not None


def _require_admin(connection: sa.Connection, actor: str, what: str) -> None:
    if not _known(connection, actor):
        raise AccessRefused(f"{what} refused: unknown user {actor!r} (not in people)")
    if "admin" not in roles_of(connection, actor):
        raise AccessRefused(f"{what} refused: {actor} is not an admin")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccessRefused(f"unknown role {role!r}: one of {', '.join(ROLES)}")


def grant(
    connection: sa.Connection,
    actor: str,
    person: str,
    role: str,
    *,
    name: str | None = None,
    email: str | None = None,
    at: datetime | None = None,
) -> str:
    """Grant ``role`` to ``person`` (added to people if new) in the caller's transaction;
    returns the audit action (``grant`` or ``bootstrap``). On PostgreSQL the database checks
    and records it (``licensing_grant_role``, which also grants the login its group role)."""
    _check_role(role)
    if connection.dialect.name == "postgresql":
        arguments = (person, role, name, email)
        return str(pg_workflow.call(connection, "licensing_grant_role", actor, at, *arguments))
    audit_trail.lock(connection)
    what = f"grant of {role} to {person}"
    action = "grant"
    if _admins(connection):
        _require_admin(connection, actor, what)
    elif role == "admin":
        action = "bootstrap"
    else:
        raise AccessRefused(f"{what} refused: no admin yet; the first grant must be admin")
    if role in roles_of(connection, person):
        raise AccessRefused(f"{what} refused: {person} already holds {role}")
    when = now_utc(at)
    if not _known(connection, person):
        connection.execute(
            sa.insert(people).values(person_id=person, name=name, email=email, created_at=when)
        )
    connection.execute(
        sa.insert(role_grants).values(
            person_id=person, role=role, granted_by=actor, granted_at=when
        )
    )
    details = {"person": person, "role": role, "name": name, "email": email}
    audit_trail.record(connection, actor, action, f"{person}:{role}", details=details, at=when)
    return action


def revoke(
    connection: sa.Connection, actor: str, person: str, role: str, *, at: datetime | None = None
) -> None:
    """Revoke ``role`` from ``person`` in the caller's transaction (the grant row is kept).
    On PostgreSQL the database checks and records it (``licensing_revoke_role``)."""
    _check_role(role)
    if connection.dialect.name == "postgresql":
        pg_workflow.call(connection, "licensing_revoke_role", actor, at, person, role)
        return
    audit_trail.lock(connection)
    what = f"revoke of {role} from {person}"
    _require_admin(connection, actor, what)
    if role not in roles_of(connection, person):
        raise AccessRefused(f"{what} refused: {person} does not hold {role}")
    if role == "admin" and _admins(connection) == 1:
        raise AccessRefused(f"{what} refused: {person} is the last admin")
    when = now_utc(at)
    connection.execute(
        sa.update(role_grants)
        .where(
            role_grants.c.grant_id.in_(
                _active(person, role).with_only_columns(role_grants.c.grant_id).scalar_subquery()
            )
        )
        .values(revoked_by=actor, revoked_at=when)
    )
    details = {"person": person, "role": role}
    audit_trail.record(connection, actor, "revoke", f"{person}:{role}", details=details, at=when)


REVIEW_COLUMNS = [
    "person_id",
    "name",
    "role",
    "granted_at",
    "granted_by",
    "last_acted_at",
    "unused",
]


def review(
    connection: sa.Connection, unused_days: int = 90, *, now: datetime | None = None
) -> pd.DataFrame:
    """Who holds which role, since when, granted by whom, when each last acted (from the audit
    trail), and ``unused``: held for ``unused_days`` or more without acting in that time."""
    last = (
        sa.select(audit_log.c.actor, sa.func.max(audit_log.c.at).label("last_acted_at"))
        .group_by(audit_log.c.actor)
        .subquery()
    )
    query = (
        sa.select(
            role_grants.c.person_id,
            people.c.name,
            role_grants.c.role,
            role_grants.c.granted_at,
            role_grants.c.granted_by,
            last.c.last_acted_at,
        )
        .join(people, people.c.person_id == role_grants.c.person_id)
        .outerjoin(last, last.c.actor == role_grants.c.person_id)
        .where(role_grants.c.revoked_at.is_(None))
        .order_by(role_grants.c.person_id, role_grants.c.role)
    )
    frame = pd.DataFrame(connection.execute(query).all(), columns=REVIEW_COLUMNS[:-1])
    cutoff = pd.Timestamp(now_utc(now) - timedelta(days=unused_days))
    granted = pd.to_datetime(frame["granted_at"])
    acted = pd.to_datetime(frame["last_acted_at"])
    frame["unused"] = (granted <= cutoff) & ~(acted > cutoff)
    return frame


def review_for_people(frame: pd.DataFrame) -> pd.DataFrame:
    """``review``'s frame for reading: times to the second, blanks for never, ``UNUSED``."""
    shown = frame.assign(unused=frame["unused"].map({True: "UNUSED", False: ""}))
    for column in ("granted_at", "last_acted_at"):
        shown[column] = pd.to_datetime(shown[column]).dt.strftime("%Y-%m-%d %H:%M:%S")
    return shown.fillna("")
