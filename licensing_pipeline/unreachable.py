"""One line for a PostgreSQL server that cannot be reached, instead of a driver's traceback.

Every command that opens PostgreSQL (the repository through SQLAlchemy, the warehouse through
psycopg2, Dagster's storage through dagster-postgres) fails the same way underneath: libpq's
connection error, wrapped or chained. ``cli.main`` looks for it in the exception's chain.
A failure of TLS (``sslmode``, certificates) says so, with the URL's ``sslmode``; connection
parameters libpq rejects before connecting (``sslmode=requir``) are named as such.
"""

import os
import re
from collections.abc import Iterable, Iterator

import sqlalchemy as sa

# libpq's "connection to server at "h" (ip), port p failed: ..." / "... on socket "/x/.s.PGSQL.p""
_SERVER = re.compile(
    r'connection to server (?:at "(?P<host>[^"]*)"(?: \([^)]*\))?, port (?P<port>\d+)'
    r'|on socket "[^"]*\.(?P<socket_port>\d+)")'
)
_UNKNOWN_HOST = re.compile(r'could not translate host name "(?P<host>[^"]*)"')
# libpq's TLS failures: no SSL on the server, a certificate missing, unreadable or not trusted
_TLS = re.compile(r"\bSSL\b|\bTLS\b|certificate|\bssl\w*", re.IGNORECASE)
# libpq's checks of the parameters, before any connection ("invalid sslmode value: ...")
_BAD_PARAMETER = re.compile(r"^(?:invalid dsn: )?invalid ")


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
        if isinstance(error, psycopg2.Error) and error.pgcode is None:
            text = str(error)
            if _SERVER.search(text) or _UNKNOWN_HOST.search(text) or _BAD_PARAMETER.match(text):
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
    candidates = [
        sa.make_url(url)
        for url in urls
        if url and url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")
    ]
    found = _SERVER.search(text) or _UNKNOWN_HOST.search(text)
    if found is None:  # rejected before connecting: name the URL that sets the parameter
        reason = _masked(text.strip().splitlines()[0].removeprefix("invalid dsn: "), candidates)
        named = [
            url
            for url in candidates
            if any(f'"{k}"' in text or f'"{v}"' in text for k, v in url.query.items())
        ]
        where = f" ({_where((named or candidates)[0])})" if candidates else ""
        return f"bad PostgreSQL connection parameter in the URL{where}: {reason}"
    host = found.groupdict().get("host")
    port = found.groupdict().get("port") or found.groupdict().get("socket_port")
    named = [
        url
        for url in candidates
        if (host is None or (url.host or "localhost") == host)
        and (port is None or str(url.port or 5432) == port)
    ]
    reason = _masked(_reason(text), candidates)
    if not (named or candidates):
        return f"cannot reach PostgreSQL at {host or 'localhost'}:{port or 5432}: {reason}"
    url = (named or candidates)[0]
    return f"cannot reach PostgreSQL at {_where(url)}{_over_tls(reason, url)}: {reason}"


def _masked(reason: str, urls: list[sa.URL]) -> str:
    for url in urls:
        if url.password:
            reason = reason.replace(str(url.password), "***")
    return reason


def _where(url: sa.URL) -> str:
    return f"{url.host or 'localhost'}:{url.port or 5432} database {url.database}"


def _over_tls(reason: str, url: sa.URL) -> str:
    """ " over TLS (sslmode=...)" when TLS is what failed, the mode from the URL or PGSSLMODE."""
    if not _TLS.search(reason):
        return ""
    mode = url.query.get("sslmode") or os.environ.get("PGSSLMODE")
    return f" over TLS (sslmode={mode})" if isinstance(mode, str) else " over TLS"
