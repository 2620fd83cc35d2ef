"""The environment rules that span variables, and what the CLI needs before Dagster exists.

The profile and the URLs it implies, Celery's need of PostgreSQL, the folders derived
from LICENSING_HOME, the as-of day. Resources that only one package uses read their own
variables (their ``from_env``: Slack, tickets, the SLA, the data-quality thresholds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from licensing_pipeline import environment as env
from licensing_pipeline.environment import SettingsError
from licensing_pipeline.file_modes import PRIVATE_FILE

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
DBT_PROJECT_DIR = PROJECT_DIR / "dbt_project"
DEFAULT_POLICY_PATH = PACKAGE_DIR / "policy" / "default_policy.yaml"
DEFAULT_HISTORY_START = date(2025, 1, 1)
DEFAULT_EARLIEST_EVENT_DATE = date(2000, 1, 1)
DEFAULT_CHANGE_MAX_BACKDATE_DAYS = 7


def _path(name: str, default: Path) -> Path:
    return env.path(name) or default


PROFILES = ("embedded", "postgres")
DAGSTER_SCHEMA = "dagster"


def _is_postgres(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def _psycopg2(url: str | None) -> str | None:
    """``postgresql://`` with the driver spelled out: SQLAlchemy 2.1 would otherwise look
    for psycopg 3, and the project ships psycopg2 (which Dagster and dbt use too)."""
    if url is None:
        return None
    scheme, sep, rest = url.partition("://")
    return f"postgresql+psycopg2://{rest}" if sep and scheme in ("postgresql", "postgres") else url


def _with_search_path(url: str, schema: str) -> str:
    """The URL with ``options=-csearch_path=<schema>`` added, so Dagster's tables (and its
    own ``alembic_version``) live in a schema of their own."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


EXECUTORS = ("in_process", "celery")
DEFAULT_CELERY_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class ExecutorSettings:
    """Where the nightly job's steps run.

    LICENSING_EXECUTOR        in_process (default: every step in the process that runs the job)
                              or celery: each step is a task for `licensing-pipeline worker`s
                              (postgres profile only: steps then run in other processes)
    LICENSING_CELERY_BROKER   the broker workers listen on (default redis://127.0.0.1:6379/0)
    LICENSING_CELERY_BACKEND  where workers leave the steps' events (default: the broker URL)
    LICENSING_CELERY_QUEUE    the queue steps are sent to and workers consume (default dagster)
    """

    kind: str
    celery_broker: str = field(repr=False)  # may embed a password
    celery_backend: str = field(repr=False)
    celery_queue: str


def load_executor_settings(profile: str) -> ExecutorSettings:
    executor = (env.text("LICENSING_EXECUTOR") or "in_process").lower().replace("-", "_")
    if executor not in EXECUTORS:
        raise SettingsError(
            f"LICENSING_EXECUTOR must be one of {', '.join(EXECUTORS)}, got {executor!r}"
        )
    if executor == "celery" and profile != "postgres":
        raise SettingsError(
            "LICENSING_EXECUTOR=celery needs LICENSING_PROFILE=postgres: Celery runs steps in "
            "other processes, and the embedded DuckDB warehouse admits one writing process"
        )
    broker = env.text("LICENSING_CELERY_BROKER") or DEFAULT_CELERY_URL
    return ExecutorSettings(
        kind=executor,
        celery_broker=broker,
        celery_backend=env.text("LICENSING_CELERY_BACKEND") or broker,
        celery_queue=env.text("LICENSING_CELERY_QUEUE") or "dagster",
    )


@dataclass(frozen=True)
class Settings:
    home: Path
    data_dir: Path
    database_url: str
    warehouse_path: Path
    policy_path: Path
    as_of: str | None
    profile: str
    warehouse_url: str | None = field(repr=False)  # may embed a password
    dagster_storage_url: str | None = field(repr=False)
    executor: ExecutorSettings
    history_start: date
    earliest_event_date: date
    statements_mode: int
    # The acting person on the embedded profile (PostgreSQL uses the database login).
    user: str | None = None
    # How far back a change request's effective date may lie when it is proposed.
    change_max_backdate_days: int = DEFAULT_CHANGE_MAX_BACKDATE_DAYS
    # A run refuses a policy bundle no approved policy_version change names.
    require_approved_policy: bool = False

    @property
    def dagster_home(self) -> Path:
        default = "dagster-postgres" if self.dagster_storage_url else "dagster"
        return _path("DAGSTER_HOME", self.home / default)

    @property
    def enforcement_dir(self) -> Path:
        """The enforcement feed: the flagd flag file and the change log (JSON Lines)."""
        return _path("LICENSING_ENFORCEMENT_DIR", self.home / "enforcement")

    @property
    def statements_dir(self) -> Path:
        """Customer statements: one folder per tenant, HTML and JSON per month."""
        return _path("LICENSING_STATEMENTS_DIR", self.home / "statements")

    @property
    def dashboard_dir(self) -> Path:
        """The compliance dashboard (internal: it names every tenant)."""
        return _path("LICENSING_DASHBOARD_DIR", self.home / "dashboard")

    @property
    def data_docs_dir(self) -> Path:
        """Great Expectations Data Docs of the latest run (static HTML)."""
        return self.home / "data_docs"


def load_settings() -> Settings:
    """Read the environment now (not at import), so tests and the CLI can set it first.

    LICENSING_PROFILE       embedded (default: SQLite, DuckDB, Dagster's SQLite storage) or
                            postgres: the repository, the warehouse (dbt target) and Dagster's
                            run/event/schedule storage all on LICENSING_DATABASE_URL
    LICENSING_WAREHOUSE_URL     the warehouse on this PostgreSQL database instead (overrides)
    LICENSING_DAGSTER_STORAGE_URL  Dagster's storage on this PostgreSQL database (overrides;
                            the profile's default is LICENSING_DATABASE_URL, schema "dagster")
    LICENSING_HOME          where the embedded stores live (default ~/.licensing-pipeline)
    LICENSING_DATA_DIR      the exports folder of the data contract (default LICENSING_HOME/data)
    LICENSING_DATABASE_URL  the licensing repository, any SQLAlchemy URL
                            (default sqlite:///LICENSING_HOME/licensing.db)
    LICENSING_WAREHOUSE_PATH  the DuckDB warehouse file (default LICENSING_HOME/warehouse.duckdb)
    LICENSING_POLICY_PATH   the policy bundle: a YAML file or a folder of them
                            (default: the one shipped with the package)
    LICENSING_ENFORCEMENT_DIR  where the flagd flag file and the change log are written
                            (default LICENSING_HOME/enforcement)
    LICENSING_STATEMENTS_DIR  where customer statements are written, a folder per tenant
                            (default LICENSING_HOME/statements)
    LICENSING_DASHBOARD_DIR  where the compliance dashboard page is written
                            (default LICENSING_HOME/dashboard)
    LICENSING_AS_OF         evaluate as of this date (YYYY-MM-DD); default today in UTC
    LICENSING_HISTORY_START the first day of the daily usage snapshots' partitions
                            (default 2025-01-01)
    LICENSING_EARLIEST_EVENT_DATE  usage events dated before this day (UTC) are quarantined
                            (default 2000-01-01)
    LICENSING_USER          the acting person on the embedded profile (``access``; trusted: the
                            local account is the identity). PostgreSQL uses the login instead
    LICENSING_CHANGE_MAX_BACKDATE_DAYS  how many days before today a proposed change may take
                            effect from (default 7; ``changes propose``)
    LICENSING_REQUIRE_APPROVED_POLICY  on: a run refuses a policy bundle that no approved
                            ``policy_version`` change in force names (default on for the
                            postgres profile, off for embedded)
    LICENSING_STATEMENTS_MODE  the file mode of customer statements (default 0600; 0640 or
                            0644 to share them; their folders get the matching 0750 / 0755)
    (Slack, tickets and SLA: see ``remediation/resources.py``.)
    (Data-quality thresholds: see ``quality/resources.py``.)
    (Where steps run, Celery: see ``ExecutorSettings``.)
    (The backup key, LICENSING_BACKUP_KEY: see ``governance/backup.py``.)
    """
    home = _path("LICENSING_HOME", Path.home() / ".licensing-pipeline")
    profile = (env.text("LICENSING_PROFILE") or "embedded").lower()
    if profile not in PROFILES:
        raise SettingsError(
            f"LICENSING_PROFILE must be one of {', '.join(PROFILES)}, got {profile!r}"
        )
    database_url = _psycopg2(env.text("LICENSING_DATABASE_URL"))
    if profile == "postgres" and not (database_url and _is_postgres(database_url)):
        raise SettingsError(
            "LICENSING_PROFILE=postgres needs LICENSING_DATABASE_URL=postgresql://user@host:5432/db"
            + (f" (got a {database_url.split(':', 1)[0]} URL)" if database_url else "")
        )
    on_postgres = database_url if profile == "postgres" else None
    warehouse_url = _psycopg2(env.text("LICENSING_WAREHOUSE_URL")) or on_postgres
    if warehouse_url and not _is_postgres(warehouse_url):
        raise SettingsError("LICENSING_WAREHOUSE_URL must be a postgresql:// URL")
    storage_url = _psycopg2(env.text("LICENSING_DAGSTER_STORAGE_URL")) or (
        _with_search_path(on_postgres, DAGSTER_SCHEMA) if on_postgres else None
    )
    as_of = env.day("LICENSING_AS_OF")  # checked now: a typo stops every command in one line
    backdate = env.days("LICENSING_CHANGE_MAX_BACKDATE_DAYS")  # 0 is a value: no backdating
    return Settings(
        profile=profile,
        warehouse_url=warehouse_url,
        dagster_storage_url=storage_url,
        home=home,
        data_dir=_path("LICENSING_DATA_DIR", home / "data"),
        database_url=database_url or f"sqlite:///{home / 'licensing.db'}",
        warehouse_path=_path("LICENSING_WAREHOUSE_PATH", home / "warehouse.duckdb"),
        policy_path=_path("LICENSING_POLICY_PATH", DEFAULT_POLICY_PATH),
        as_of=as_of.isoformat() if as_of else None,
        executor=load_executor_settings(profile),
        history_start=env.day("LICENSING_HISTORY_START") or DEFAULT_HISTORY_START,
        earliest_event_date=env.day("LICENSING_EARLIEST_EVENT_DATE") or DEFAULT_EARLIEST_EVENT_DATE,
        statements_mode=env.file_mode("LICENSING_STATEMENTS_MODE") or PRIVATE_FILE,
        user=env.text("LICENSING_USER"),
        change_max_backdate_days=DEFAULT_CHANGE_MAX_BACKDATE_DAYS if backdate is None else backdate,
        require_approved_policy=(
            required
            if (required := env.switch("LICENSING_REQUIRE_APPROVED_POLICY")) is not None
            else profile == "postgres"
        ),
    )
