"""`licensing-pipeline access grant|revoke|review`: who may act, and the periodic review."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from licensing_pipeline.settings import Settings

INSUFFICIENT_PRIVILEGE = "42501"  # SQLSTATE: a login without the privilege


@contextmanager
def acting(settings: Settings) -> Iterator[tuple[sa.Connection, str]]:
    """One transaction and the acting person; a refusal is one line, nothing written."""
    from licensing_pipeline.cli import CliError
    from licensing_pipeline.governance.access import AccessRefused, acting_person
    from licensing_pipeline.repository.resources import checked_engine

    try:
        with checked_engine(settings.database_url).begin() as con:
            yield con, acting_person(con, settings.user)
    except AccessRefused as exc:
        raise CliError(str(exc)) from None
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) != INSUFFICIENT_PRIVILEGE:
            raise
        reason = str(exc.orig).strip().splitlines()[0]
        raise CliError(f"refused by the database: {reason}") from None


def _change(change: Callable[..., Any], settings: Settings, *args: Any, **kwargs: Any) -> Any:
    with acting(settings) as (con, actor):
        return actor, change(con, actor, *args, **kwargs)


def cmd_grant(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.governance.access import grant

    actor, action = _change(
        grant, settings, args.person, args.role, name=args.name, email=args.email
    )
    note = " (bootstrap: no admin existed)" if action == "bootstrap" else ""
    print(f"granted {args.role} to {args.person} by {actor}{note}")
    return 0


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.governance.access import revoke

    actor, _ = _change(revoke, settings, args.person, args.role)
    print(f"revoked {args.role} from {args.person} by {actor}")
    return 0


def cmd_review(args: argparse.Namespace, settings: Settings) -> int:
    from licensing_pipeline.governance.access import review, review_for_people
    from licensing_pipeline.repository.resources import checked_engine

    with checked_engine(settings.database_url).connect() as con:
        frame = review(con, args.unused_days)
    if frame.empty:
        print("No roles granted (bootstrap: `licensing-pipeline access grant PERSON admin`).")
        return 0
    print(review_for_people(frame).to_string(index=False))
    unused = int(frame["unused"].sum())
    print(f"{len(frame)} grant(s); {unused} unused for {args.unused_days} days or more")
    return 0


def add_access_commands(sub: Any) -> None:
    from licensing_pipeline.cli import _positive
    from licensing_pipeline.governance.tables import ROLES

    access = sub.add_parser("access", help="grant and revoke roles, review who holds which")
    commands = access.add_subparsers(dest="access_command", required=True)
    grant = commands.add_parser("grant", help="grant a role (admin only, or the first admin)")
    grant.add_argument("person", help="person id (on PostgreSQL: the database login)")
    grant.add_argument("role", choices=ROLES)
    grant.add_argument("--name", help="the person's name, when new")
    grant.add_argument("--email", help="the person's email, when new")
    grant.set_defaults(func=cmd_grant)
    revoke = commands.add_parser("revoke", help="revoke a role (admin only)")
    revoke.add_argument("person")
    revoke.add_argument("role", choices=ROLES)
    revoke.set_defaults(func=cmd_revoke)
    review = commands.add_parser("review", help="who holds which role, and unused grants")
    review.add_argument(
        "--unused-days", type=_positive, default=90, help="a grant unused this long is flagged"
    )
    review.set_defaults(func=cmd_review)
