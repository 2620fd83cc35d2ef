"""Every environment variable the project reads, in one place.

Modules never call ``os.environ`` themselves: they ask for a ``Settings`` and
pass the values on to resources, so what can be configured is visible here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
DBT_PROJECT_DIR = PROJECT_DIR / "dbt_project"
DEFAULT_POLICY_PATH = PACKAGE_DIR / "policy" / "default_policy.yaml"
DEFAULT_HISTORY_START = date(2025, 1, 1)
DEFAULT_EARLIEST_EVENT_DATE = date(2000, 1, 1)


def _path(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else default


def _text(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def _day(name: str, default: date) -> date:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SettingsError(f"{name} must be a day like 2025-01-01, got {value!r}") from None


def _optional_day(name: str) -> str | None:
    """A day given as text (the as-of day travels as an ISO string), checked here so a typo
    stops every command with one line instead of deep inside a run."""
    value = os.environ.get(name, "").strip()
    return _day(name, date.min).isoformat() if value else None


def _file_mode(name: str, default: int) -> int:
    """An octal file mode that keeps the owner's read and write and grants others read at
    most (0600, 0640, 0644)."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if mode & ~0o644 or mode & 0o600 != 0o600:
        raise SettingsError(
            f"{name} must be an octal file mode between 0600 and 0644 (e.g. 0640), got {value!r}"
        )
    return mode


TICKET_EVENTS = ("acknowledged", "resolved", "reopened", "wont_fix")


def _transitions(name: str) -> dict[str, str]:
    """``event=Jira transition or status`` pairs, comma-separated; events: TICKET_EVENTS."""
    value = os.environ.get(name, "").strip()
    pairs: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        event, _, target = (text.strip() for text in part.partition("="))
        if event not in TICKET_EVENTS or not target:
            raise SettingsError(
                f"{name}: {part!r} is not event=transition with an event among "
                f"{', '.join(TICKET_EVENTS)} (e.g. resolved=Done)"
            )
        pairs[event] = target
    return pairs


def _days(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        days = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of days, got {value!r}") from None
    if days < 0:
        raise ValueError(f"{name} must not be negative, got {days}")
    return days


@dataclass(frozen=True)
class RemediationSettings:
    """Slack, the external ticket system and the remediation SLA (all optional).

    SLACK_BOT_TOKEN                 bot token (xoxb-...); without it alerts are recorded, not sent
    SLACK_API_URL                   Slack Web API base URL (default https://slack.com/api/)
    LICENSING_SLACK_DEFAULT_CHANNEL where alerts go when a tenant has no slack_channel, or its
                                    channel is not found (default #licensing-compliance)
    LICENSING_SLACK_DATA_CHANNEL    failed nightly runs and failed asset checks (#data-engineering)
    LICENSING_SLACK_ESCALATION_CHANNEL  overdue tickets, unless routing names a manager channel
                                    (default #licensing-escalations)
    LICENSING_ROUTING_PATH          optional CSV: check,segment,owner,slack_channel,escalation_channel
    LICENSING_TICKET_WEBHOOK_URL    POST a JSON document per new ticket to this URL
    LICENSING_JIRA_URL / _EMAIL / _API_TOKEN / _PROJECT / _ISSUE_TYPE
                                    create a Jira Cloud issue per new ticket (issue type: Task)
    LICENSING_JIRA_TRANSITIONS      optional: move the Jira issue when its ticket changes, e.g.
                                    "resolved=Done,reopened=To Do,wont_fix=Won't Do"
    LICENSING_SLA_CRITICAL_DAYS / _WARNING_DAYS / _INFO_DAYS
                                    days from opening to due date (defaults 3, 14, 30)
    DAGSTER_WEBSERVER_URL           base of links in messages (default http://127.0.0.1:3000)
    """

    slack_bot_token: str | None = field(default=None, repr=False)  # a secret
    slack_api_url: str | None = None
    slack_default_channel: str = "#licensing-compliance"
    slack_data_channel: str = "#data-engineering"
    slack_escalation_channel: str = "#licensing-escalations"
    routing_path: Path | None = None
    ticket_webhook_url: str | None = field(default=None, repr=False)  # may embed a secret
    jira_url: str | None = None
    jira_email: str | None = None
    jira_api_token: str | None = field(default=None, repr=False)  # a secret
    jira_project: str | None = None
    jira_issue_type: str = "Task"
    jira_transitions: dict[str, str] = field(default_factory=dict)
    sla_critical_days: int = 3
    sla_warning_days: int = 14
    sla_info_days: int = 30
    dagster_webserver_url: str = "http://127.0.0.1:3000"


def load_remediation_settings() -> RemediationSettings:
    defaults = RemediationSettings()
    routing = os.environ.get("LICENSING_ROUTING_PATH", "").strip()
    return RemediationSettings(
        slack_bot_token=_text("SLACK_BOT_TOKEN"),
        slack_api_url=_text("SLACK_API_URL"),
        slack_default_channel=_text("LICENSING_SLACK_DEFAULT_CHANNEL")
        or defaults.slack_default_channel,
        slack_data_channel=_text("LICENSING_SLACK_DATA_CHANNEL") or defaults.slack_data_channel,
        slack_escalation_channel=_text("LICENSING_SLACK_ESCALATION_CHANNEL")
        or defaults.slack_escalation_channel,
        routing_path=Path(routing).expanduser().resolve() if routing else None,
        ticket_webhook_url=_text("LICENSING_TICKET_WEBHOOK_URL"),
        jira_url=_text("LICENSING_JIRA_URL"),
        jira_email=_text("LICENSING_JIRA_EMAIL"),
        jira_api_token=_text("LICENSING_JIRA_API_TOKEN"),
        jira_project=_text("LICENSING_JIRA_PROJECT"),
        jira_issue_type=_text("LICENSING_JIRA_ISSUE_TYPE") or defaults.jira_issue_type,
        jira_transitions=_transitions("LICENSING_JIRA_TRANSITIONS"),
        sla_critical_days=_days("LICENSING_SLA_CRITICAL_DAYS", defaults.sla_critical_days),
        sla_warning_days=_days("LICENSING_SLA_WARNING_DAYS", defaults.sla_warning_days),
        sla_info_days=_days("LICENSING_SLA_INFO_DAYS", defaults.sla_info_days),
        dagster_webserver_url=_text("DAGSTER_WEBSERVER_URL") or defaults.dagster_webserver_url,
    )


def _number(name: str, default: float, *, at_most: float | None = None) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if number < 0 or (at_most is not None and number > at_most):
        bound = f" and at most {at_most:g}" if at_most is not None else ""
        raise ValueError(f"{name} must be at least 0{bound}, got {value}")
    return number


@dataclass(frozen=True)
class DataQualitySettings:
    """Thresholds of the data-quality checks (``quality/expectations.yaml``).

    LICENSING_DQ_FRESHNESS_HOURS      the newest usage event must be at most this many hours
                                      older than the end of the as-of day (default 36)
    LICENSING_DQ_MIN_VOLUME_SHARE     the as-of day must bring at least this share of the usual
                                      volume (same weekday, previous 4 weeks; default 0.5)
    LICENSING_DQ_FUTURE_TOLERANCE_HOURS  events may be at most this many hours ahead of the
                                      clock (or of the end of the as-of day; default 48)
    LICENSING_DQ_MAX_QUARANTINE_SHARE share of usage lines that may be quarantined before the
                                      check warns (default 0.01)
    LICENSING_DQ_EARLY_USAGE_DAYS     usage more than this many days before the tenant's first
                                      contract warns (default 365)
    """

    freshness_hours: float = 36.0
    min_volume_share: float = 0.5
    future_tolerance_hours: float = 48.0
    max_quarantine_share: float = 0.01
    early_usage_days: float = 365.0


def load_data_quality_settings() -> DataQualitySettings:
    defaults = DataQualitySettings()
    return DataQualitySettings(
        freshness_hours=_number("LICENSING_DQ_FRESHNESS_HOURS", defaults.freshness_hours),
        min_volume_share=_number(
            "LICENSING_DQ_MIN_VOLUME_SHARE", defaults.min_volume_share, at_most=1.0
        ),
        future_tolerance_hours=_number(
            "LICENSING_DQ_FUTURE_TOLERANCE_HOURS", defaults.future_tolerance_hours
        ),
        max_quarantine_share=_number(
            "LICENSING_DQ_MAX_QUARANTINE_SHARE", defaults.max_quarantine_share, at_most=1.0
        ),
        early_usage_days=_number("LICENSING_DQ_EARLY_USAGE_DAYS", defaults.early_usage_days),
    )


PROFILES = ("embedded", "postgres")
DAGSTER_SCHEMA = "dagster"


class SettingsError(ValueError):
    """The environment asks for something inconsistent; the message says what to set."""


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

    kind: str = "in_process"
    celery_broker: str = field(default=DEFAULT_CELERY_URL, repr=False)  # may embed a password
    celery_backend: str = field(default=DEFAULT_CELERY_URL, repr=False)
    celery_queue: str = "dagster"


def load_executor_settings(profile: str) -> ExecutorSettings:
    executor = (_text("LICENSING_EXECUTOR") or "in_process").lower().replace("-", "_")
    if executor not in EXECUTORS:
        raise SettingsError(
            f"LICENSING_EXECUTOR must be one of {', '.join(EXECUTORS)}, got {executor!r}"
        )
    if executor == "celery" and profile != "postgres":
        raise SettingsError(
            "LICENSING_EXECUTOR=celery needs LICENSING_PROFILE=postgres: Celery runs steps in "
            "other processes, and the embedded DuckDB warehouse admits one writing process"
        )
    broker = _text("LICENSING_CELERY_BROKER") or DEFAULT_CELERY_URL
    return ExecutorSettings(
        kind=executor,
        celery_broker=broker,
        celery_backend=_text("LICENSING_CELERY_BACKEND") or broker,
        celery_queue=_text("LICENSING_CELERY_QUEUE") or "dagster",
    )


@dataclass(frozen=True)
class Settings:
    home: Path
    data_dir: Path
    database_url: str
    warehouse_path: Path
    policy_path: Path
    as_of: str | None
    remediation: RemediationSettings = field(default_factory=RemediationSettings)
    data_quality: DataQualitySettings = field(default_factory=DataQualitySettings)
    profile: str = "embedded"
    warehouse_url: str | None = field(default=None, repr=False)  # may embed a password
    dagster_storage_url: str | None = field(default=None, repr=False)
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    history_start: date = DEFAULT_HISTORY_START
    earliest_event_date: date = DEFAULT_EARLIEST_EVENT_DATE
    statements_mode: int = 0o600

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
    LICENSING_STATEMENTS_MODE  the file mode of customer statements (default 0600; 0640 or
                            0644 to share them; their folders get the matching 0750 / 0755)
    (Slack, tickets and SLA: see ``RemediationSettings``.)
    (Data-quality thresholds: see ``DataQualitySettings``.)
    (Where steps run, Celery: see ``ExecutorSettings``.)
    """
    home = _path("LICENSING_HOME", Path.home() / ".licensing-pipeline")
    profile = (_text("LICENSING_PROFILE") or "embedded").lower()
    if profile not in PROFILES:
        raise SettingsError(
            f"LICENSING_PROFILE must be one of {', '.join(PROFILES)}, got {profile!r}"
        )
    database_url = _psycopg2(_text("LICENSING_DATABASE_URL"))
    if profile == "postgres" and not (database_url and _is_postgres(database_url)):
        raise SettingsError(
            "LICENSING_PROFILE=postgres needs LICENSING_DATABASE_URL=postgresql://user@host:5432/db"
            + (f" (got a {database_url.split(':', 1)[0]} URL)" if database_url else "")
        )
    on_postgres = database_url if profile == "postgres" else None
    warehouse_url = _psycopg2(_text("LICENSING_WAREHOUSE_URL")) or on_postgres
    if warehouse_url and not _is_postgres(warehouse_url):
        raise SettingsError("LICENSING_WAREHOUSE_URL must be a postgresql:// URL")
    storage_url = _psycopg2(_text("LICENSING_DAGSTER_STORAGE_URL")) or (
        _with_search_path(on_postgres, DAGSTER_SCHEMA) if on_postgres else None
    )
    return Settings(
        profile=profile,
        warehouse_url=warehouse_url,
        dagster_storage_url=storage_url,
        home=home,
        data_dir=_path("LICENSING_DATA_DIR", home / "data"),
        database_url=database_url or f"sqlite:///{home / 'licensing.db'}",
        warehouse_path=_path("LICENSING_WAREHOUSE_PATH", home / "warehouse.duckdb"),
        policy_path=_path("LICENSING_POLICY_PATH", DEFAULT_POLICY_PATH),
        as_of=_optional_day("LICENSING_AS_OF"),
        remediation=load_remediation_settings(),
        data_quality=load_data_quality_settings(),
        executor=load_executor_settings(profile),
        history_start=_day("LICENSING_HISTORY_START", DEFAULT_HISTORY_START),
        earliest_event_date=_day("LICENSING_EARLIEST_EVENT_DATE", DEFAULT_EARLIEST_EVENT_DATE),
        statements_mode=_file_mode("LICENSING_STATEMENTS_MODE", 0o600),
    )
