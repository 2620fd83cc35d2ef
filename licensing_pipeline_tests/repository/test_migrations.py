"""Alembic migrations: head equals the table models, behind is refused, old databases adopted."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from licensing_pipeline.contract.schemas import COMPLIANCE_FINDINGS, FINDING_RECORDS
from licensing_pipeline.repository import schema
from licensing_pipeline.repository.engines import shared_engine
from licensing_pipeline.repository.errors import SchemaNotCurrent
from licensing_pipeline.repository.resources import LicensingRepository, checked_engine
from licensing_pipeline.repository.tables import compliance_findings

INTERNAL = {"policy_hash", "rule_id", "exception_id"}


def create_old_findings_table(engine: sa.Engine) -> None:
    """compliance_findings as create_all made it before the internal columns existed."""
    old = sa.MetaData()
    sa.Table(
        "compliance_findings",
        old,
        *[c._copy() for c in compliance_findings.columns if c.name not in INTERNAL],
    )
    old.create_all(engine)


OLD_ROW = """
INSERT INTO compliance_findings VALUES ('f1', 't-1', 'quota_exceeded', 'api_calls', '2026-10',
    120, 100, 'critical', 'throttle', 'open', '2026.10.0', 'c1', '2026-11-01 02:00:00',
    '2026-11-01 02:00:00', 'over')
"""


@pytest.fixture
def engine(repository_url: str) -> Iterator[sa.Engine]:
    engine = shared_engine(repository_url)
    yield engine
    engine.dispose()


def schema_diff(engine: sa.Engine) -> list:
    """What autogenerate would put in a new revision: empty when migrations match the models."""
    with engine.connect() as con:
        context = MigrationContext.configure(
            con,
            opts={
                "include_object": schema.include_object,
                "compare_type": True,
                "version_table": schema.VERSION_TABLE,
            },
        )
        return compare_metadata(context, schema.full_metadata())


def test_an_empty_database_upgrades_to_exactly_the_table_models(engine: sa.Engine):
    before, after = schema.upgrade(engine)
    assert (before.state, after.state) == ("empty", "current")
    assert after.current == schema.head_revision()
    assert schema_diff(engine) == []


def test_migrations_go_down_to_base_and_up_again(engine: sa.Engine):
    schema.upgrade(engine)
    assert schema.downgrade(engine, "base").state == "empty"
    assert set(sa.inspect(engine).get_table_names()) <= {schema.VERSION_TABLE}
    schema.upgrade(engine)
    assert schema_diff(engine) == []


def test_an_empty_database_is_migrated_on_first_use(engine: sa.Engine, repository_url: str):
    assert LicensingRepository(database_url=repository_url).load_findings().empty
    assert schema.schema_status(engine).state == "current"


def test_processes_starting_together_migrate_an_empty_database_once(repository_url: str):
    """Steps of a first run start at once: each waits for the lock, then finds it done."""

    def start(_: int) -> str:
        engine = shared_engine(repository_url)
        try:
            schema.ensure_current(engine)
            return schema.schema_status(engine).state
        finally:
            engine.dispose()

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(start, range(4))) == {"current"}


def test_other_tools_tables_do_not_count_as_a_schema(engine: sa.Engine, repository_url: str):
    """Dagster's storage (with its own alembic_version) may share a PostgreSQL database."""
    with engine.begin() as con:
        con.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        con.execute(sa.text("INSERT INTO alembic_version VALUES ('16e3655b4d9b')"))
        con.execute(sa.text("CREATE TABLE runs (id INTEGER PRIMARY KEY)"))
    checked_engine(repository_url).dispose()
    assert schema.schema_status(engine).state == "current"
    assert schema_diff(engine) == []
    with engine.connect() as con:
        assert con.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == (
            "16e3655b4d9b"
        )


def test_a_schema_behind_head_is_refused_with_the_command_to_run(
    engine: sa.Engine, repository_url: str
):
    schema.upgrade(engine, "0001")
    with pytest.raises(SchemaNotCurrent) as refused:
        LicensingRepository(database_url=repository_url).load_findings()
    message = str(refused.value)
    assert "\n" not in message
    assert f"revision 0001, behind {schema.head_revision()}" in message
    assert "run `licensing-pipeline db upgrade`" in message
    schema.upgrade(engine)
    assert LicensingRepository(database_url=repository_url).load_findings().empty


def test_a_revision_from_a_newer_release_is_refused(engine: sa.Engine, repository_url: str):
    schema.upgrade(engine)
    with engine.begin() as con:
        con.execute(sa.text(f"UPDATE {schema.VERSION_TABLE} SET version_num = 'ffff'"))
    with pytest.raises(SchemaNotCurrent, match=r"does not know.*newer licensing-pipeline"):
        checked_engine(repository_url)
    with pytest.raises(SchemaNotCurrent, match="newer"):
        schema.upgrade(engine)


def test_a_database_from_before_migrations_is_refused_then_adopted(
    engine: sa.Engine, repository_url: str
):
    create_old_findings_table(engine)
    with engine.begin() as con:
        con.execute(sa.text(OLD_ROW))
    repo = LicensingRepository(database_url=repository_url)
    with pytest.raises(SchemaNotCurrent, match=r"created before schema migrations.*db upgrade"):
        repo.load_findings()

    before, after = schema.upgrade(engine)
    assert (before.state, after.state) == ("legacy", "current")
    assert schema_diff(engine) == []
    findings = repo.load_findings()
    assert list(findings.columns) == list(COMPLIANCE_FINDINGS)
    assert findings["finding_id"].tolist() == ["f1"]
    records = repo.load_finding_records()
    assert list(records.columns) == list(FINDING_RECORDS)
    assert records[["policy_hash", "rule_id", "exception_id"]].isna().all().all()
    records.loc[0, ["policy_hash", "rule_id"]] = ["abc", "quota-exceeded-hard"]
    repo.save_findings(
        records, run_id="r1", as_of=date(2026, 11, 1), policy_version="p", catalog_version="c1"
    )
    assert repo.load_finding_records().loc[0, "rule_id"] == "quota-exceeded-hard"


def test_a_missing_not_null_column_stops_adoption(engine: sa.Engine):
    with engine.begin() as con:
        con.execute(sa.text("CREATE TABLE finding_runs (run_id VARCHAR(64) PRIMARY KEY)"))
    with pytest.raises(SchemaNotCurrent, match="cannot adopt table finding_runs"):
        schema.upgrade(engine)
    assert schema.schema_status(engine).state == "legacy"


def test_the_migration_files_ship_with_the_package():
    from importlib.resources import files

    migrations = files("licensing_pipeline.repository") / "migrations"
    assert (migrations / "env.py").is_file()
    assert (migrations / "script.py.mako").is_file()
    revisions = sorted(
        p.name for p in (migrations / "versions").iterdir() if p.name.startswith("0")
    )
    assert revisions[:3] == [
        "0001_baseline.py",
        "0002_tenant_row_security.py",
        "0003_ticket_sink_status.py",
    ]


def test_alerts_queued_before_0005_keep_their_data_and_are_posted_as_new(engine: sa.Engine):
    schema.upgrade(engine, "0004")
    with engine.begin() as con:
        con.execute(
            sa.text(
                "INSERT INTO alert_outbox (alert_key, kind, ref, period, channel, payload, "
                "status, attempts, created_at, updated_at) VALUES ('critical|f1|cycle-1', "
                "'critical', 'f1', 'cycle-1', '#acme', '{}', 'failed', 2, "
                "'2026-11-20 03:00:00', '2026-11-20 03:00:00')"
            )
        )
    schema.upgrade(engine)
    with engine.connect() as con:
        row = con.execute(sa.text("SELECT * FROM alert_outbox")).mappings().one()
        holds = con.execute(sa.text("SELECT count(*) FROM delivery_holds")).scalar_one()
    assert (row["alert_key"], row["status"], row["attempts"]) == (
        "critical|f1|cycle-1",
        "failed",
        2,
    )
    assert row["delivery_key"] is None and row["unconfirmed_since"] is None  # no lookup first
    assert holds == 0
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as con:  # still unique
        con.execute(
            sa.text(
                "INSERT INTO alert_outbox (alert_key, kind, ref, period, channel, payload, "
                "status, attempts, created_at, updated_at) SELECT alert_key, kind, ref, period, "
                "channel, payload, status, attempts, created_at, updated_at FROM alert_outbox"
            )
        )
