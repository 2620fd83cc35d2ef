"""One line for a PostgreSQL server that cannot be reached, instead of a driver's traceback.

Every command that opens PostgreSQL (the repository through SQLAlchemy, the warehouse through
psycopg2, Dagster's storage through dagster-postgres) fails the same way underneath: libpq's
connection error, wrapped or chained. ``cli.main`` looks for it in the exception's chain.
"""

import re
from collections.abc import Iterable, Iterator

import sqlalchemy as sa

# libpq's "connection to server at "h" (ip), port p failed: ..." / "... on socket "/x/.s.PGSQL.p""
_SERVER = re.compile(
    r'connection to server (?:at "(?P<host>[^"]*)"(?: \([^)]*\))?, port (?P<port>\d+)'
    r'|on socket "[^"]*\.(?P<socket_port>\d+)")'
)
_UNKNOWN_HOST = re.compile(r'could not translate host name "(?P<host>[^"]*)"')


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _connection_failure(exc: BaseException) -> str | None:
    """libpq's message if ``exc`` comes from a connection that was never made."""
    import psycopg2

    for error in _chain(exc):
        # A server that answered a query has a SQLSTATE; a connection never made has none.
        if isinstance(error, psycopg2.OperationalError) and error.pgcode is None:
            text = str(error)
            if _SERVER.search(text) or _UNKNOWN_HOST.search(text):
                return text
    return None


def _reason(text: str) -> str:
    first = text.strip().splitlines()[0]
    reason = first.split(" failed: ", 1)[-1]
    reason = re.sub(r"^FATAL:\s+", "", reason)
    return reason[:1].lower() + reason[1:]


def unreachable_postgres(exc: BaseException, urls: Iterable[str | None]) -> str | None:
    """``cannot reach PostgreSQL at host:port database db: reason``, or None for other errors.

    ``urls`` are the ones the command may have used; the one whose host and port libpq names
    gives the database. No password: URLs are shown by parts, and one echoed is masked.
    """
    text = _connection_failure(exc)
    if text is None:
        return None
    found = _SERVER.search(text) or _UNKNOWN_HOST.search(text)
    assert found is not None
    host = found.groupdict().get("host")
    port = found.groupdict().get("port") or found.groupdict().get("socket_port")
    candidates = [
        sa.make_url(url)
        for url in urls
        if url and url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")
    ]
    named = [
        url
        for url in candidates
        if (host is None or (url.host or "localhost") == host)
        and (port is None or str(url.port or 5432) == port)
    ]
    reason = _reason(text)
    for url in candidates:
        if url.password:
            reason = reason.replace(str(url.password), "***")
    if not (named or candidates):
        return f"cannot reach PostgreSQL at {host or 'localhost'}:{port or 5432}: {reason}"
    url = (named or candidates)[0]
    where = f"{url.host or 'localhost'}:{url.port or 5432} database {url.database}"
    return f"cannot reach PostgreSQL at {where}: {reason}"
