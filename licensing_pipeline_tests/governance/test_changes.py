"""Change requests: an editor proposes, a different approver decides, the proposer may
withdraw; every refusal (bad input and attacks of issue 18) its own test, on SQLite and on
PostgreSQL (as the owner login), each leaving the requests and the trail as they were.

The CLI runs in process on the embedded profile (the actor is LICENSING_USER) and on
PostgreSQL (the actor is the database login).
"""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from licensing_pipeline import cli
from licensing_pipeline.governance import access, audit_trail, changes
from licensing_pipeline.governance.change_kinds import approved_changes
from licensing_pipeline.governance.tables import change_requests
from licensing_pipeline.policy.bundle import load_policy
from licensing_pipeline.repository.resources import checked_engine
from licensing_pipeline.settings import DEFAULT_POLICY_PATH, SettingsError, load_settings
from licensing_pipeline_tests.backends import backend_environment, backend_variables
from licensing_pipeline_tests.postgres import fresh_database

T0 = datetime(2026, 12, 1, 9, 0)
TODAY = date(2026, 12, 7)
BUNDLE = load_policy(DEFAULT_POLICY_PATH)
VOCABULARY = changes.Vocabulary(
    tenants=frozenset({"t-acme", "t-globex"}),
    metrics=frozenset({"api_calls", "seats"}),
    features=frozenset({"sso", "api_access"}),
    regions=frozenset({"eu-west-1", "us-east-1"}),
    plans=frozenset({"starter", "pro"}),
    addons=frozenset({"analytics"}),
    bundles=frozenset({(BUNDLE.version, BUNDLE.content_hash)}),
)
QUOTA = {"metric": "api_calls", "limit": 5000}


@pytest.fixture
def engine(repository_url: str) -> sa.Engine:
    return staffed(checked_engine(repository_url))


def staffed(engine: sa.Engine) -> sa.Engine:
    """alice admin (access only); bob editor and approver; carol editor; dave approver;
    vic viewer."""
    with engine.begin() as con:
        access.grant(con, "alice", "alice", "admin", at=T0)
        for person, role in (
            ("bob", "editor"),
            ("bob", "approver"),
            ("carol", "editor"),
            ("dave", "approver"),
            ("vic", "viewer"),
        ):
            access.grant(con, "alice", person, role, at=T0)
    return engine


def propose(con: sa.Connection, actor: str = "carol", kind: str = "quota_override", **kw) -> int:
    arguments = {
        "tenant_id": "t-acme",
        "payload": QUOTA,
        "reason": "renewal signed early",
        "effective_from": TODAY,
        "effective_until": None,
    } | kw
    return changes.propose(
        con,
        actor,
        kind,
        arguments["tenant_id"],
        arguments["payload"],
        arguments["reason"],
        arguments["effective_from"],
        arguments["effective_until"],
        vocabulary=VOCABULARY,
        today=TODAY,
        max_backdate_days=7,
    )


def proposed(engine: sa.Engine, actor: str = "carol", **kw) -> int:
    with engine.begin() as con:
        return propose(con, actor, **kw)


def state(engine: sa.Engine) -> tuple[int, list]:
    with engine.connect() as con:
        rows = con.execute(sa.select(change_requests).order_by("request_id")).all()
        return audit_trail.verify(con).entries, rows


def refused(engine: sa.Engine, message: str, step, *args, **kwargs) -> None:
    """``step`` is refused with exactly ``message`` and leaves requests and trail as they were."""
    before = state(engine)
    with pytest.raises(changes.ChangeRefused) as raised, engine.begin() as con:
        step(con, *args, **kwargs)
    assert str(raised.value) == message
    assert "\n" not in str(raised.value)
    assert state(engine) == before


# --- the happy paths --------------------------------------------------------------------------


def test_a_proposal_approved_by_another_approver_is_in_force_and_in_the_trail(engine):
    request_id = proposed(engine, effective_until=TODAY + timedelta(days=30))
    with engine.begin() as con:
        assert changes.request(con, request_id)["status"] == "pending"
        assert approved_changes(con).empty
        changes.approve(con, "dave", request_id, "checked the order form")
    with engine.connect() as con:
        shown = changes.request(con, request_id)
        approved = approved_changes(con)
        assert audit_trail.verify(con).entries == 8
    assert (shown["status"], shown["decided_by"], shown["proposed_by"]) == (
        "approved",
        "dave",
        "carol",
    )
    assert shown["payload"] == QUOTA
    history = [(e["actor"], e["action"], e["tenant_id"]) for e in shown["history"]]
    assert history == [("carol", "propose", "t-acme"), ("dave", "approve", "t-acme")]
    assert json.loads(shown["history"][0]["details"])["payload"] == QUOTA
    assert approved["request_id"].tolist() == [request_id]
    assert approved["effective_until"].iloc[0] == pd.Timestamp(TODAY + timedelta(days=30))


def test_a_rejection_keeps_its_note_and_applies_nothing(engine):
    request_id = proposed(engine)
    with engine.begin() as con:
        changes.reject(con, "dave", request_id, "no signed order form")
        shown = changes.request(con, request_id)
        assert approved_changes(con).empty
    assert (shown["status"], shown["decision_note"]) == ("rejected", "no signed order form")


def test_the_proposer_withdraws_and_no_one_is_recorded_as_decider(engine):
    request_id = proposed(engine)
    with engine.begin() as con:
        changes.withdraw(con, "carol", request_id)
        shown = changes.request(con, request_id)
    assert (shown["status"], shown["decided_by"]) == ("withdrawn", None)
    assert [e["action"] for e in shown["history"]] == ["propose", "withdraw"]


def test_every_kind_can_be_proposed(engine):
    payloads = {
        "quota_override": {"metric": "seats", "limit": None},
        "feature_grant": {"feature": "sso"},
        "feature_revoke": {"feature": "api_access"},
        "region_allow": {"region": "us-east-1"},
        "plan_change": {"plan": "pro"},
        "addon_add": {"addon": "analytics"},
        "addon_remove": {"addon": "analytics"},
        "contract_status": {"status": "paused"},
        "exception": {"check": "quota_exceeded", "subject": "*"},
        "policy_version": {"version": BUNDLE.version, "sha256": BUNDLE.content_hash},
    }
    with engine.begin() as con:
        for kind, payload in payloads.items():
            tenant = None if kind == "policy_version" else "t-globex"
            propose(con, kind=kind, tenant_id=tenant, payload=payload)
        frame = changes.requests(con, status="pending", tenant_id="t-globex")
    assert len(frame) == len(payloads) - 1
    assert set(frame["kind"]) == set(payloads) - {"policy_version"}


def test_requests_filter_by_status_and_tenant(engine):
    first = proposed(engine)
    proposed(engine, tenant_id="t-globex")
    with engine.begin() as con:
        changes.approve(con, "bob", first)
        assert changes.requests(con, status="approved")["request_id"].tolist() == [first]
        assert changes.requests(con, tenant_id="t-globex")["tenant_id"].tolist() == ["t-globex"]
        assert len(changes.requests(con)) == 2


def test_a_step_whose_transaction_fails_leaves_nothing(engine):
    before = state(engine)
    with pytest.raises(RuntimeError), engine.begin() as con:
        propose(con)
        raise RuntimeError("the transaction failed")
    assert state(engine) == before


# --- who may act ------------------------------------------------------------------------------


def test_approving_ones_own_proposal_is_refused(engine):
    request_id = proposed(engine, "bob")
    refused(
        engine,
        f"approval of change #{request_id} refused: bob proposed it "
        "(four-eyes: a different approver must decide)",
        changes.approve,
        "bob",
        request_id,
    )


def test_rejecting_ones_own_proposal_is_refused(engine):
    request_id = proposed(engine, "bob")
    refused(
        engine,
        f"rejection of change #{request_id} refused: bob proposed it "
        "(four-eyes: a different approver must decide)",
        changes.reject,
        "bob",
        request_id,
        "changed my mind",
    )


def test_an_editor_approving_is_refused(engine):
    request_id = proposed(engine, "bob")
    refused(
        engine,
        f"approval of change #{request_id} refused: carol is not an approver",
        changes.approve,
        "carol",
        request_id,
    )


def test_a_viewer_proposing_is_refused(engine):
    refused(
        engine,
        "proposal of quota_override for t-acme refused: vic is not an editor",
        propose,
        "vic",
    )


def test_an_admin_is_not_an_editor_or_approver(engine):
    refused(
        engine,
        "proposal of quota_override for t-acme refused: alice is not an editor "
        "(admin manages access only)",
        propose,
        "alice",
    )
    request_id = proposed(engine)
    refused(
        engine,
        f"approval of change #{request_id} refused: alice is not an approver "
        "(admin manages access only)",
        changes.approve,
        "alice",
        request_id,
    )


def test_an_unknown_user_is_refused(engine):
    refused(
        engine,
        "proposal of quota_override for t-acme refused: unknown user 'mallory' (not in people)",
        propose,
        "mallory",
    )
    request_id = proposed(engine)
    refused(
        engine,
        f"approval of change #{request_id} refused: unknown user 'mallory' (not in people)",
        changes.approve,
        "mallory",
        request_id,
    )
    refused(
        engine,
        f"withdrawal of change #{request_id} refused: unknown user 'mallory' (not in people)",
        changes.withdraw,
        "mallory",
        request_id,
    )


def test_a_revoked_approver_is_refused(engine):
    request_id = proposed(engine)
    with engine.begin() as con:
        access.revoke(con, "alice", "dave", "approver", at=T0 + timedelta(days=3))
    refused(
        engine,
        f"approval of change #{request_id} refused: dave is not an approver (revoked 2026-12-04)",
        changes.approve,
        "dave",
        request_id,
    )


def test_only_the_proposer_may_withdraw(engine):
    request_id = proposed(engine)
    refused(
        engine,
        f"withdrawal of change #{request_id} refused: only its proposer carol may withdraw it",
        changes.withdraw,
        "bob",
        request_id,
    )


# --- the request's state ------------------------------------------------------------------------


FIRST_STEPS = {
    "approved": lambda con, request_id: changes.approve(con, "dave", request_id),
    "withdrawn": lambda con, request_id: changes.withdraw(con, "carol", request_id),
    "rejected": lambda con, request_id: changes.reject(con, "dave", request_id, "no"),
}


@pytest.mark.parametrize(
    ("first", "then", "actor", "what", "verb"),
    [
        ("approved", changes.approve, "bob", "approval", "decided"),  # approving twice
        ("withdrawn", changes.approve, "dave", "approval", "decided"),
        ("rejected", changes.approve, "bob", "approval", "decided"),
        ("approved", changes.withdraw, "carol", "withdrawal", "withdrawn"),
    ],
)
def test_a_request_that_is_no_longer_pending_cannot_be_decided_or_withdrawn(
    engine, first, then, actor, what, verb
):
    request_id = proposed(engine)
    with engine.begin() as con:
        FIRST_STEPS[first](con, request_id)
    refused(
        engine,
        f"{what} of change #{request_id} refused: it is already {first} "
        f"(only a pending change can be {verb})",
        then,
        actor,
        request_id,
    )


def test_two_approvals_at_once_on_postgresql_queue_and_the_second_is_refused():
    """The second approver waits on the trail's lock while the first decides, then finds the
    request approved: one decision, one audit entry."""
    with fresh_database() as url:
        engine = staffed(checked_engine(url))
        request_id = proposed(engine)
        refusals: list[str] = []

        def second() -> None:
            with pytest.raises(changes.ChangeRefused) as raised, engine.begin() as con:
                changes.approve(con, "bob", request_id)
            refusals.append(str(raised.value))

        with engine.connect() as first:
            with first.begin():
                changes.approve(first, "dave", request_id)
                waiting = threading.Thread(target=second)
                waiting.start()
                waiting.join(timeout=2)
                assert waiting.is_alive()  # queued behind the first approval
            waiting.join(timeout=30)
        assert refusals == [
            f"approval of change #{request_id} refused: it is already approved "
            "(only a pending change can be decided)"
        ]
        with engine.connect() as con:
            shown = changes.request(con, request_id)
        assert [e["action"] for e in shown["history"]] == ["propose", "approve"]
        assert shown["decided_by"] == "dave"


def test_approving_a_change_that_does_not_exist_is_refused(engine):
    refused(engine, "approval of change #42 refused: no such change", changes.approve, "dave", 42)


def test_a_rejection_needs_a_note(engine):
    request_id = proposed(engine)
    refused(
        engine,
        f"rejection of change #{request_id} refused: a note saying why is required",
        changes.reject,
        "dave",
        request_id,
        "  ",
    )


# --- what a change names ------------------------------------------------------------------------


def test_a_change_for_an_unknown_tenant_is_refused_with_close_matches(engine):
    refused(
        engine,
        "proposal of quota_override for t-acmee refused: unknown tenant 't-acmee' "
        "(did you mean t-acme?)",
        propose,
        tenant_id="t-acmee",
    )


@pytest.mark.parametrize(
    ("kind", "payload", "message"),
    [
        (
            "quota_override",
            {"metric": "api_call", "limit": 1},
            "unknown metric 'api_call' (did you mean api_calls?)",
        ),
        ("feature_grant", {"feature": "teleport"}, "unknown feature 'teleport'"),
        (
            "region_allow",
            {"region": "eu-west-9"},
            "unknown region 'eu-west-9' (did you mean eu-west-1, us-east-1?)",
        ),
        ("plan_change", {"plan": "enterprise"}, "unknown plan 'enterprise'"),
        ("addon_add", {"addon": "analytic"}, "unknown addon 'analytic' (did you mean analytics?)"),
        ("contract_status", {"status": "frozen"}, "unknown status 'frozen'"),
        (
            "exception",
            {"check": "quota_exceed", "subject": ""},
            "unknown check 'quota_exceed' (did you mean quota_exceeded?)",
        ),
    ],
)
def test_a_change_naming_something_that_does_not_exist_is_refused(engine, kind, payload, message):
    refused(
        engine,
        f"proposal of {kind} for t-acme refused: {message}",
        propose,
        kind=kind,
        payload=payload,
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"metric": "api_calls", "limit": -1},
            "limit must be a number >= 0, or null for unlimited (got -1)",
        ),
        (
            {"metric": "api_calls", "limit": "lots"},
            "limit must be a number >= 0, or null for unlimited (got 'lots')",
        ),
        (
            {"metric": "api_calls", "limit": float("inf")},
            "limit must be a number >= 0, or null for unlimited (got inf)",
        ),
        (
            {"metric": "api_calls", "limit": True},
            "limit must be a number >= 0, or null for unlimited (got True)",
        ),
        ({"metric": "api_calls"}, "quota_override needs limit"),
        ({**QUOTA, "region": "eu-west-1"}, "quota_override takes no region (only metric, limit)"),
    ],
)
def test_a_malformed_payload_is_refused(engine, payload, message):
    refused(
        engine,
        f"proposal of quota_override for t-acme refused: {message}",
        propose,
        payload=payload,
    )


def test_an_unknown_kind_is_refused(engine):
    refused(
        engine,
        "proposal of discount for t-acme refused: unknown kind 'discount' (one of "
        + ", ".join(changes.KINDS)
        + ")",
        propose,
        kind="discount",
    )


def test_a_policy_version_must_be_a_real_bundle_and_has_no_tenant(engine):
    forged = {"version": BUNDLE.version, "sha256": "0" * 64}
    refused(
        engine,
        f"proposal of policy_version refused: no policy bundle {BUNDLE.version} with sha256 "
        + "0" * 64,
        propose,
        kind="policy_version",
        tenant_id=None,
        payload=forged,
    )
    refused(
        engine,
        "proposal of policy_version refused: sha256 must be 64 hex digits (got 'abc')",
        propose,
        kind="policy_version",
        tenant_id=None,
        payload={"version": BUNDLE.version, "sha256": "abc"},
    )
    refused(
        engine,
        "proposal of policy_version for t-acme refused: policy_version applies to no tenant "
        "(got 't-acme')",
        propose,
        kind="policy_version",
        payload={"version": BUNDLE.version, "sha256": BUNDLE.content_hash},
    )


def test_a_tenant_change_needs_a_tenant(engine):
    refused(
        engine,
        "proposal of quota_override refused: quota_override needs a tenant",
        propose,
        tenant_id=None,
    )


# --- reason and dates ---------------------------------------------------------------------------


def test_an_effective_date_in_the_past_beyond_the_limit_is_refused(engine):
    refused(
        engine,
        "proposal of quota_override for t-acme refused: effective from 2026-11-29 is more than "
        "7 day(s) in the past (LICENSING_CHANGE_MAX_BACKDATE_DAYS)",
        propose,
        effective_from=TODAY - timedelta(days=8),
    )
    proposed(engine, effective_from=TODAY - timedelta(days=7))  # at the limit: accepted


def test_until_before_from_is_refused(engine):
    refused(
        engine,
        "proposal of quota_override for t-acme refused: effective until 2026-12-06 is before "
        "effective from 2026-12-07",
        propose,
        effective_until=TODAY - timedelta(days=1),
    )


def test_a_proposal_needs_a_reason(engine):
    refused(
        engine,
        "proposal of quota_override for t-acme refused: a reason is required",
        propose,
        reason=" ",
    )


# --- the vocabulary and the setting -------------------------------------------------------------

CATALOG_YAML = """\
version: "2026-10-01"
regions: {us-east-1: US, eu-west-1: EU}
features: [api_access, sso]
metrics:
  api_calls: {event_type: api.request, aggregation: COUNT, period: month}
plans:
  starter: {features: [api_access], quotas: {api_calls: 100000}}
addons:
  sso_pack: {features: [sso]}
"""
CONTRACTS_CSV = (
    "contract_id,tenant_id,plan,addons,quota_overrides,start_date,end_date,status,enforcement\n"
    "c-1,t-acme,starter,,{},2026-01-01,,active,hard\n"
    "c-2,t-initech,starter,sso_pack,{},2026-01-01,,paused,soft\n"
)


def write_data(data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "catalog.yaml").write_text(CATALOG_YAML)
    (data_dir / "tenants.csv").write_text("tenant_id,name\nt-acme,Acme\nt-globex,Globex\n")
    (data_dir / "contracts.csv").write_text(CONTRACTS_CSV)
    return data_dir


def test_the_vocabulary_comes_from_the_data_dir(tmp_path: Path):
    vocabulary = changes.load_vocabulary(write_data(tmp_path / "data"), [BUNDLE])
    assert vocabulary.tenants == {"t-acme", "t-globex", "t-initech"}  # tenants.csv and contracts
    assert (vocabulary.metrics, vocabulary.plans, vocabulary.addons) == (
        {"api_calls"},
        {"starter"},
        {"sso_pack"},
    )
    assert vocabulary.regions == {"us-east-1", "eu-west-1"}
    assert vocabulary.statuses == {"active", "paused", "cancelled"}
    assert "usage_anomaly" in vocabulary.checks
    assert vocabulary.bundles == {(BUNDLE.version, BUNDLE.content_hash)}


def test_the_backdating_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("LICENSING_HOME", str(tmp_path))
    monkeypatch.delenv("LICENSING_CHANGE_MAX_BACKDATE_DAYS", raising=False)
    assert load_settings().change_max_backdate_days == 7
    monkeypatch.setenv("LICENSING_CHANGE_MAX_BACKDATE_DAYS", "0")
    assert load_settings().change_max_backdate_days == 0
    monkeypatch.setenv("LICENSING_CHANGE_MAX_BACKDATE_DAYS", "-3")
    with pytest.raises(SettingsError, match="LICENSING_CHANGE_MAX_BACKDATE_DAYS must not be"):
        load_settings()


# --- the CLI ------------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, database_url: str | None) -> tuple[Path, str | None]:
    write_data(tmp_path / "data")
    return tmp_path, database_url


def url_of(home: tuple[Path, str | None]) -> str:
    path, url = home
    return url or f"sqlite:///{path / 'licensing.db'}"


def login(home: tuple[Path, str | None]) -> str:
    """Who the CLI acts as: the login on PostgreSQL, else LICENSING_USER (carol here)."""
    url = home[1]
    return (sa.make_url(url).username or "") if url else "carol"


def staff(home: tuple[Path, str | None]) -> None:
    """The CLI's actor is editor and approver; dave an approver."""
    with checked_engine(url_of(home)).begin() as con:
        access.grant(con, "alice", "alice", "admin")
        for person, role in (
            (login(home), "editor"),
            (login(home), "approver"),
            ("dave", "approver"),
        ):
            access.grant(con, "alice", person, role)


def run(home: tuple[Path, str | None], user: str, *args: str) -> int:
    path, url = home
    variables = backend_variables(path, path / "data", url)
    variables["LICENSING_USER"] = user
    with backend_environment(variables):
        return cli.main(["changes", *args])


def cli_propose(home: tuple[Path, str | None], user: str, kind: str, *options: str) -> int:
    """``changes propose KIND OPTIONS`` with a reason, in force from today."""
    today = date.today().isoformat()
    return run(home, user, "propose", kind, *options, "--reason", "r", "--effective-from", today)


def test_cli_propose_list_show_and_the_four_eyes_refusal(home, capsys):
    staff(home)
    me = login(home)
    quota = ["--tenant", "t-acme", "--metric", "api_calls", "--limit", "5000"]
    assert cli_propose(home, "carol", "quota_override", *quota) == 0
    assert capsys.readouterr().out == (
        f'proposed change #1: quota_override for t-acme {{"limit": 5000, "metric": "api_calls"}} '
        f"from {date.today().isoformat()} by {me} (pending approval)\n"
    )
    assert run(home, "carol", "approve", "1") == 2
    assert capsys.readouterr().err == (
        f"licensing-pipeline: approval of change #1 refused: {me} proposed it "
        "(four-eyes: a different approver must decide)\n"
    )
    assert run(home, "carol", "list", "--format", "jsonl") == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["status"], row["proposed_by"]) == ("pending", me)
    assert row["payload"] == {"limit": 5000, "metric": "api_calls"}
    assert run(home, "carol", "show", "1") == 0
    shown = capsys.readouterr().out
    assert "status: pending" in shown and f"propose by {me}" in shown
    assert f"proposed_at: {date.today().isoformat()}T" in shown
    nowhere = ["--tenant", "t-nope", "--region", "us-east-1"]
    assert cli_propose(home, "carol", "region_allow", *nowhere) == 2
    assert capsys.readouterr().err == (
        "licensing-pipeline: proposal of region_allow for t-nope refused: unknown tenant 't-nope'\n"
    )


def test_cli_approve_reject_withdraw_and_a_policy_bundle(tmp_path: Path, capsys):
    home = (tmp_path, None)
    write_data(tmp_path / "data")
    staff(home)
    assert (
        cli_propose(home, "carol", "feature_grant", "--tenant", "t-acme", "--feature", "sso") == 0
    )
    assert cli_propose(home, "carol", "policy_version", "--bundle", str(DEFAULT_POLICY_PATH)) == 0
    assert f'"sha256": "{BUNDLE.content_hash}"' in capsys.readouterr().out
    assert cli_propose(home, "carol", "plan_change", "--tenant", "t-acme", "--plan", "starter") == 0
    assert run(home, "dave", "approve", "1", "--note", "ok") == 0
    assert run(home, "dave", "reject", "2", "--note", "not this quarter") == 0
    assert run(home, "carol", "withdraw", "3") == 0
    assert capsys.readouterr().out.splitlines()[-3:] == [
        "approved change #1 by dave",
        "rejected change #2 by dave",
        "withdrew change #3 by carol",
    ]
    assert run(home, "dave", "list", "--status", "approved", "--format", "csv") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("1,feature_grant,t-acme,")
    wrong = ["--tenant", "t-acme", "--region", "us-east-1"]
    assert cli_propose(home, "carol", "feature_grant", *wrong) == 2
    assert capsys.readouterr().err == (
        "licensing-pipeline: proposal of feature_grant for t-acme refused: feature_grant takes "
        "no region (only feature)\n"
    )
