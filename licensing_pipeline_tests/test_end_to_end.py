"""The whole graph on a generated demo dataset: the findings equal what the demo seeded, on
the embedded backend and on PostgreSQL alike."""

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from licensing_pipeline import cli
from licensing_pipeline.contract.schemas import CHECKS
from licensing_pipeline.dashboard.page import TOP_TENANTS
from licensing_pipeline.repository.resources import LicensingRepository
from licensing_pipeline.repository.tables import finding_history
from licensing_pipeline.settings import load_settings
from licensing_pipeline.warehouse.resources import warehouse_for
from licensing_pipeline_tests.backends import backend_environment, backend_variables
from licensing_pipeline_tests.postgres import fresh_database
from licensing_pipeline_tests.statements.test_statement_page import BROWSER, Dom

AS_OF = "2026-11-20"
pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Backend:
    name: str
    home: Path
    data_dir: Path
    database_url: str | None = None

    def env(self, **extra: str) -> AbstractContextManager[None]:
        variables = backend_variables(self.home, self.data_dir, self.database_url)
        return backend_environment({**variables, **extra})

    def findings(self) -> pd.DataFrame:
        with self.env():
            return LicensingRepository(database_url=load_settings().database_url).load_findings()

    def run(self, *args: str) -> int:
        with self.env():
            return cli.main(["run", "--as-of", AS_OF, *args])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo dataset that both backends evaluate."""
    folder = tmp_path_factory.mktemp("exports") / "data"
    code = cli.main(
        ["demo", "--tenants", "24", "--months", "4", "--as-of", AS_OF, "--out", str(folder)]
    )
    assert code == 0
    return folder


def _first_run(backend: Backend) -> tuple[Backend, pd.DataFrame]:
    assert backend.run() == 0
    return backend, backend.findings()


@pytest.fixture(scope="module")
def embedded_run(
    data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Backend, pd.DataFrame]:
    return _first_run(Backend("embedded", tmp_path_factory.mktemp("embedded-home"), data_dir))


@pytest.fixture(scope="module")
def postgres_run(
    data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Backend, pd.DataFrame]]:
    with fresh_database() as url:
        home = tmp_path_factory.mktemp("postgres-home")
        yield _first_run(Backend("postgres", home, data_dir, database_url=url))


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def backend_run(request: pytest.FixtureRequest) -> tuple[Backend, pd.DataFrame]:
    return request.getfixturevalue(f"{request.param}_run")


@pytest.fixture(scope="module")
def backend(backend_run: tuple[Backend, pd.DataFrame]) -> Backend:
    return backend_run[0]


@pytest.fixture(scope="module")
def first_run(backend_run: tuple[Backend, pd.DataFrame]) -> pd.DataFrame:
    return backend_run[1]


@contextmanager
def served(root: Path) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    """``root`` over http on 127.0.0.1 (a free port), and the (path, status) of each request."""
    requests: list[tuple[str, int]] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            requests.append((self.path, int(code)))

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def in_browser(url: str, width: int, screenshot: Path) -> tuple[Dom, list[str]]:
    """The DOM headless Chromium builds at ``width`` px, its console messages, and a
    screenshot of the first 4,000 px of the page."""
    assert BROWSER is not None
    common = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    common += ["--enable-logging=stderr", "--v=0", f"--window-size={width},4000"]
    shot = subprocess.run(
        [*common, f"--screenshot={screenshot}", url], capture_output=True, text=True, timeout=120
    )
    dumped = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    )
    console = [line for line in (shot.stderr + dumped.stderr).splitlines() if ":CONSOLE" in line]
    dom = Dom()
    dom.feed(dumped.stdout)
    return dom, console


def manifest(data_dir: Path) -> dict:
    return json.loads((data_dir / "demo_manifest.json").read_text())


def test_every_seeded_violation_is_found_with_its_status_and_figures(
    data_dir: Path, first_run: pd.DataFrame
):
    found = first_run.set_index(["tenant_id", "check", "subject", "period"])
    seeded = manifest(data_dir)["violations"]
    assert {v["check"] for v in seeded} == set(CHECKS)
    missing = []
    for violation in seeded:
        key = (
            violation["tenant_id"],
            violation["check"],
            violation["subject"],
            violation["period"],
        )
        if key not in found.index:
            missing.append(key)
            continue
        row = found.loc[key]
        assert row["status"] == violation["expected_status"], key
        assert row["observed"] == pytest.approx(violation["observed"]), key
        assert row["allowed"] == pytest.approx(violation["allowed"]), key
    assert not missing, f"seeded but not found: {missing}"


def test_nothing_is_found_that_was_not_seeded(data_dir: Path, first_run: pd.DataFrame):
    seeded = {
        (v["tenant_id"], v["check"], v["subject"], v["period"])
        for v in manifest(data_dir)["violations"]
    }
    found = set(
        first_run[["tenant_id", "check", "subject", "period"]].itertuples(index=False, name=None)
    )
    assert found - seeded == set()


def test_clean_tenants_have_no_findings_and_near_limit_ones_only_notices(
    data_dir: Path, first_run: pd.DataFrame
):
    seeded = manifest(data_dir)
    clean, near = set(seeded["clean_tenants"]), set(seeded["near_limit_tenants"])
    assert clean and near
    assert first_run[first_run["tenant_id"].isin(clean)].empty
    on_near = first_run[first_run["tenant_id"].isin(near)]
    assert set(on_near["check"]) == {"quota_near_limit"}
    assert set(on_near["severity"]) == {"info"}


def test_quarantine_holds_exactly_the_seeded_bad_lines(
    data_dir: Path, backend: Backend, first_run: pd.DataFrame
):
    with backend.env():
        quarantined = warehouse_for(load_settings()).read_frame("quarantined_records")
    assert len(quarantined) == manifest(data_dir)["expected_quarantined"]
    assert quarantined["reason"].notna().all()
    assert quarantined["line"].notna().all()


@pytest.fixture(scope="module")
def second_run(backend: Backend, first_run: pd.DataFrame) -> tuple[int, pd.DataFrame]:
    """The same data again, with ``--fail-on critical``: one run serves both tests below
    (each whole run costs half a minute)."""
    code = backend.run("--fail-on", "critical")
    return code, backend.findings()


def test_a_second_run_keeps_every_finding_id_and_first_detection(
    second_run: tuple[int, pd.DataFrame], first_run: pd.DataFrame
):
    code, second = second_run
    assert code == cli.EXIT_FINDINGS_AT_OR_ABOVE  # given only after the job succeeded
    before = first_run.set_index("finding_id")
    after = second.set_index("finding_id")
    assert set(after.index) == set(before.index)
    assert (after.loc[before.index, "first_detected_at"] == before["first_detected_at"]).all()
    assert (after.loc[before.index, "status"] == before["status"]).all()


def test_the_finding_history_holds_each_finding_once_from_the_run_that_found_it(
    backend: Backend, second_run: tuple[int, pd.DataFrame], first_run: pd.DataFrame
):
    """Nothing changed on the second run, so it appended nothing."""
    with backend.env():
        repository = LicensingRepository(database_url=load_settings().database_url)
    with repository.connect() as con:
        history = pd.DataFrame(con.execute(sa.select(finding_history)).mappings().all())
    runs = repository.load_finding_runs()
    assert len(runs) == 2
    assert sorted(history["finding_id"]) == sorted(first_run["finding_id"])
    assert set(history["change"]) == {"new"}
    assert set(history["run_id"]) == {runs["run_id"].iloc[0]}
    found = history.set_index("finding_id").loc[first_run["finding_id"]]
    assert found["status"].tolist() == first_run["status"].tolist()
    assert found["severity"].tolist() == first_run["severity"].tolist()


def test_fail_on_critical_exits_with_its_own_code(
    second_run: tuple[int, pd.DataFrame], first_run: pd.DataFrame
):
    open_critical = (first_run["status"] == "open") & (first_run["severity"] == "critical")
    assert open_critical.any()
    assert second_run[0] == cli.EXIT_FINDINGS_AT_OR_ABOVE


def test_findings_command_prints_the_contract_columns(
    backend: Backend, first_run: pd.DataFrame, capsys: pytest.CaptureFixture[str]
):
    with backend.env():
        capsys.readouterr()
        assert cli.main(["findings", "--format", "jsonl", "--status", "all"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(first_run)
    assert list(rows[0]) == [
        "finding_id",
        "tenant_id",
        "check",
        "subject",
        "period",
        "observed",
        "allowed",
        "severity",
        "action",
        "status",
        "policy_version",
        "catalog_version",
        "first_detected_at",
        "last_detected_at",
        "details",
    ]


def test_the_run_is_recorded_in_the_dagster_instance(backend: Backend, first_run: pd.DataFrame):
    import dagster as dg

    from licensing_pipeline.instance import ensure_dagster_home

    with backend.env():
        settings = load_settings()
        ensure_dagster_home(settings)
        with dg.DagsterInstance.get() as instance:
            storage = type(instance.run_storage).__name__
            runs = instance.get_runs(dg.RunsFilter(job_name="nightly_compliance"))
    assert runs and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    assert storage == ("PostgresRunStorage" if backend.database_url else "SqliteRunStorage")


def test_both_backends_find_exactly_the_same(
    embedded_run: tuple[Backend, pd.DataFrame], postgres_run: tuple[Backend, pd.DataFrame]
):
    columns = [
        *("finding_id", "check", "subject", "period", "observed", "allowed", "severity"),
        *("status", "action", "policy_version", "catalog_version", "details"),
    ]
    embedded, postgres = (
        run[columns].sort_values("finding_id").reset_index(drop=True)
        for _, run in (embedded_run, postgres_run)
    )
    assert len(embedded) > 0
    pd.testing.assert_frame_equal(embedded, postgres)


def test_snapshots_command_backfills_days_that_agree_with_the_findings(
    backend: Backend, first_run: pd.DataFrame, capsys: pytest.CaptureFixture[str]
):
    import dagster as dg

    from licensing_pipeline.instance import ensure_dagster_home

    with backend.env():
        assert cli.main(["snapshots", "--from", "2026-10-01", "--to", AS_OF]) == 0
        built = capsys.readouterr().out
        assert cli.main(["snapshots", "--late", "--to", AS_OF]) == 0  # nothing came late
        assert f"No kept day up to {AS_OF} has gained events" in capsys.readouterr().out
        settings = load_settings()
        warehouse = warehouse_for(settings)
        snapshots = warehouse.read_frame("daily_usage_snapshots")
        archived, evaluated = (
            warehouse.read_frame(
                f"SELECT count(*) AS n FROM main.{table} "
                f"WHERE usage_date BETWEEN CAST('2026-10-01' AS DATE) AND CAST('{AS_OF}' AS DATE)"
            )["n"].iloc[0]
            for table in ("daily_usage_events", "events_in_scope")
        )
        ensure_dagster_home(settings)
        with dg.DagsterInstance.get() as instance:
            partitions = {
                name: instance.get_materialized_partitions(dg.AssetKey(name))
                for name in ("daily_usage_snapshots", "daily_usage_events")
            }
    days = {d.date().isoformat() for d in pd.date_range("2026-10-01", AS_OF)}
    assert all(days <= materialized for materialized in partitions.values())
    assert archived == evaluated > 0  # every evaluated event of the range, each once
    snapshots["day"] = pd.to_datetime(snapshots["snapshot_day"]).dt.strftime("%Y-%m-%d")
    at = snapshots.set_index(["day", "tenant_id", "metric"])
    exceeded = first_run[
        (first_run["check"] == "quota_exceeded") & first_run["period"].isin(["2026-10", AS_OF[:7]])
    ]
    assert len(exceeded) > 0
    for finding in exceeded.itertuples():
        last_day = AS_OF if finding.period == AS_OF[:7] else f"{finding.period}-31"
        row = at.loc[(last_day, finding.tenant_id, finding.subject)]
        # The month's last snapshot holds the usage and quota the finding was decided on.
        assert (row["quantity"], row["allowed"]) == pytest.approx(
            (finding.observed, finding.allowed)
        )
    if (exceeded["period"] == AS_OF[:7]).any():
        assert "Over quota at the end of" in built


def test_each_tenant_statement_holds_its_own_findings_and_no_one_elses(
    backend: Backend, first_run: pd.DataFrame, capsys: pytest.CaptureFixture[str]
):
    with backend.env():
        folder = load_settings().statements_dir
        warehouse = warehouse_for(load_settings())
        listed = set(warehouse.read_frame("tenants")["tenant_id"])
        entitlements = warehouse.read_frame("effective_entitlements")
    # tenants.csv, and any tenant with a contract in the months (a contract can name a tenant
    # the tenants file lacks)
    entitled = set(entitlements[entitlements["period"].isin(["2026-10", "2026-11"])]["tenant_id"])
    tenants = sorted(listed | entitled)
    assert sorted(p.name for p in folder.iterdir()) == tenants
    for period in ("2026-10", "2026-11"):
        in_force = set(entitlements[entitlements["period"] == period]["tenant_id"])
        for tenant in sorted(listed | in_force):
            page = (folder / tenant / f"{period}.html").read_text()
            statement = json.loads((folder / tenant / f"{period}.json").read_text())
            expected = first_run[
                (first_run["tenant_id"] == tenant) & first_run["period"].str.startswith(period)
            ]
            assert {f["finding_id"] for f in statement["findings"]} == set(expected["finding_id"])
            for other in set(tenants) - {tenant}:
                assert other not in page and other not in json.dumps(statement)
    # On demand, as the tenant (PostgreSQL: under row-level security), the same statement.
    breached = first_run[first_run["check"] == "quota_exceeded"]["tenant_id"].iloc[0]
    with backend.env(LICENSING_AS_OF=AS_OF):
        if backend.database_url:
            assert cli.main(["db", "grant-reader"]) == 0
        capsys.readouterr()
        code = cli.main(["statement", breached, "--period", "2026-10", "--format", "json"])
    assert code == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == json.loads((folder / breached / "2026-10.json").read_text())
    assert "quota_exceeded" in {f["check"] for f in shown["findings"]}


def test_the_dashboard_counts_the_open_findings_and_links_each_statement(
    backend: Backend, first_run: pd.DataFrame
):
    with backend.env():
        page = load_settings().dashboard_dir / "index.html"
    text = page.read_text()
    shown = re.search(r"Open findings</span><b>([\d,]+)</b>", text)
    assert shown and int(shown.group(1).replace(",", "")) == (first_run["status"] == "open").sum()
    links = re.findall(r'<a href="([^"]+)">', text)
    tenants_with_open = first_run[first_run["status"] == "open"]["tenant_id"].nunique()
    assert len(links) == min(tenants_with_open, TOP_TENANTS)
    assert all((page.parent / link).resolve().is_file() for link in links)


def test_the_pages_show_the_numbers_of_the_findings_the_repository_and_the_statements(
    backend: Backend, data_dir: Path, first_run: pd.DataFrame, capsys: pytest.CaptureFixture[str]
):
    with backend.env():
        settings = load_settings()
        capsys.readouterr()
        assert cli.main(["findings", "--format", "jsonl"]) == 0  # the open ones
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    page = (settings.dashboard_dir / "index.html").read_text()
    shown = re.search(r"Open findings</span><b>([\d,]+)</b>", page)
    assert shown and int(shown.group(1).replace(",", "")) == len(printed)
    assert len(printed) == (first_run["status"] == "open").sum()
    # the leakage total: each open unbilled finding's missing quantity at its billed unit price
    billing = pd.read_csv(data_dir / "billing_records.csv", dtype={"period": str})
    unbilled = first_run[(first_run["check"] == "unbilled_usage") & (first_run["status"] == "open")]
    assert len(unbilled), "the demo seeds unbilled usage"
    expected: dict[str, float] = {}
    for f in unbilled.itertuples():
        rows = billing[(billing["tenant_id"] == f.tenant_id) & (billing["metric"] == f.subject)]
        rows = rows[rows["period"] <= f.period].sort_values("period")
        month = rows[rows["period"] == rows["period"].iloc[-1]]
        price = month["amount"].sum() / month["billed_quantity"].sum()
        currency = str(month["currency"].iloc[0])
        amount = round((f.observed - f.allowed) * price, 2)
        expected[currency] = expected.get(currency, 0.0) + amount
    total = re.search(r'id="leakage-total"><span>Revenue leakage</span><b>([^<]+)</b>', page)
    assert total and total.group(1) == " + ".join(
        f"{a:,.2f} {c}" for c, a in sorted(expected.items())
    )
    assert f"{len(unbilled):,} open unbilled finding(s)" in page
    # every statement's bars say the JSON's figures
    for statement_json in settings.statements_dir.glob("*/2026-11.json"):
        statement = json.loads(statement_json.read_text())
        html_page = statement_json.with_suffix(".html").read_text()
        for line in statement["usage"]:
            limit = line["allowed"]
            label = f"{line['metric']}: {line['used']:,.0f} used" + (
                f" of {limit:,.0f}" if limit is not None else ""
            )
            assert f'aria-label="{label}' in html_page


def test_the_statement_and_the_dashboard_in_a_browser_at_desktop_and_phone_width(
    backend: Backend, first_run: pd.DataFrame, tmp_path: Path
):
    if BROWSER is None:
        pytest.skip("no Chromium here (Debian: apt install chromium)")
    with backend.env():
        settings = load_settings()
    root = settings.statements_dir.parent
    assert settings.dashboard_dir.parent == root
    tenant = first_run[first_run["check"] == "quota_exceeded"]["tenant_id"].iloc[0]
    statement = json.loads((settings.statements_dir / tenant / f"{AS_OF[:7]}.json").read_text())
    lines = statement["usage"]
    assert any(line["daily"] for line in lines) and any(line["projected"] for line in lines)
    pages = {
        "statement": (
            f"/{settings.statements_dir.name}/{tenant}/{AS_OF[:7]}.html",
            {f"usage-bar-{line['metric']}" for line in lines}
            | {f"usage-month-{line['metric']}" for line in lines if line["daily"]},
        ),
        "dashboard": (
            f"/{settings.dashboard_dir.name}/index.html",
            {"chart-open-by-check", "chart-open-by-severity", "chart-leakage", "chart-tenant-risk"},
        ),
    }
    with served(root) as (base, requests):
        for name, (path, charts) in pages.items():
            for width in (1280, 390):
                requests.clear()
                shot = tmp_path / f"{name}-{width}.png"
                dom, console = in_browser(base + path, width, shot)
                assert console == [], f"console messages on the {name} at {width} px: {console}"
                # the page alone (once per browser run): nothing else is fetched to view it
                assert [p for p, _ in requests if p != "/favicon.ico"] == [path, path]
                assert all(status == 200 for p, status in requests if p == path)
                ids = {a.get("id") for tag, a in dom.tags if tag == "svg"}
                assert charts <= ids, f"{name}: missing {charts - ids}"
                assert shot.stat().st_size > 10_000
