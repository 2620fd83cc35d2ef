"""The database enforces who may act (PostgreSQL; no-op on SQLite).

Until now roles were checked by the application only: the owner's login wrote the access
tables and the trail, so whoever ran SQL as the owner could grant itself a role. Now:

- group roles ``licensing_viewer``, ``licensing_editor``, ``licensing_approver`` and
  ``licensing_admin`` (NOLOGIN, cluster-wide, created if missing) hold SELECT on the
  governance tables and EXECUTE on their functions; no login but the owner holds INSERT,
  UPDATE or DELETE on them;
- the workflow's writes go through SECURITY DEFINER functions (owner = the migrating login,
  ``search_path`` pinned, EXECUTE revoked from PUBLIC) that check ``session_user`` against
  ``people``/``role_grants``, raise one-line refusals (SQLSTATE 42501) with the application's
  text, and append the audit entry in SQL (encoding v2, ``governance/audit_trail.py``, under
  the same advisory lock): ``licensing_propose_change``, ``licensing_decide_change``,
  ``licensing_withdraw_change``, ``licensing_grant_role`` and ``licensing_revoke_role``
  (these two also GRANT/REVOKE the group role to/from the login named like the person);
- each has an ``..._as`` twin taking the actor and the time, executable by the owner only:
  the owner can write the tables directly anyway, so this adds no power; it lets the owner
  replay or backdate actions (imports, the application's tests).

Bootstrapping the first admin is for the owner's login only: group roles are cluster-wide, so
an admin of another database could otherwise call the grant function here first.

The migrating login needs CREATEROLE (or to be superuser) to create and grant group roles.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# frozen here
ROLES = ("viewer", "editor", "approver", "admin")
TABLES = ("change_requests", "people", "role_grants", "audit_log")
LOCK_KEY = 0x4C1C_A0D1  # governance/audit_trail.LOCK_KEY: appends queue with Python's
NOW = "(now() AT TIME ZONE 'UTC')"
REFUSED = "42501"
ROLE_LIST = ", ".join(ROLES)

_HELPERS = [
    """CREATE FUNCTION licensing_netstring(v text) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN v IS NULL THEN convert_to('~,', 'UTF8')
    ELSE convert_to(octet_length(convert_to(v, 'UTF8'))::text || ':', 'UTF8')
      || convert_to(v, 'UTF8') || convert_to(',', 'UTF8') END
$$""",
    """CREATE FUNCTION licensing_audit_hash(
  seq integer, at timestamp, actor text, action text, tenant_id text, subject text,
  details text, prev_hash text
) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT encode(sha256(convert_to(E'licensing-audit-v2\\n', 'UTF8')
    || licensing_netstring(seq::text)
    || licensing_netstring(to_char(at, 'YYYY-MM-DD"T"HH24:MI:SS.US'))
    || licensing_netstring(actor) || licensing_netstring(action)
    || licensing_netstring(tenant_id) || licensing_netstring(subject)
    || licensing_netstring(details) || licensing_netstring(prev_hash)), 'hex')
$$""",
    f"""CREATE FUNCTION licensing_audit_append(
  p_actor text, p_action text, p_subject text, p_tenant_id text, p_details jsonb,
  p_at timestamp
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_seq integer;
  v_prev text;
  v_details text := p_details::text;
BEGIN
  PERFORM pg_advisory_xact_lock({LOCK_KEY});
  SELECT seq, entry_hash INTO v_seq, v_prev FROM audit_log ORDER BY seq DESC LIMIT 1;
  IF NOT FOUND THEN
    v_seq := 0;
    v_prev := repeat('0', 64);
  END IF;
  INSERT INTO audit_log (seq, at, actor, action, tenant_id, subject, details, prev_hash,
    entry_hash)
  VALUES (v_seq + 1, p_at, p_actor, p_action, p_tenant_id, p_subject, v_details, v_prev,
    licensing_audit_hash(v_seq + 1, p_at, p_actor, p_action, p_tenant_id, p_subject,
      v_details, v_prev));
END $$""",
    f"""CREATE FUNCTION licensing_refuse(p_what text, p_why text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = '{REFUSED}', MESSAGE = p_what || ' refused: ' || p_why;
END $$""",
    """CREATE FUNCTION licensing_holds(p_person text, p_role text) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM role_grants
    WHERE person_id = p_person AND role = p_role AND revoked_at IS NULL)
$$""",
    """CREATE FUNCTION licensing_require_role(p_person text, p_role text, p_what text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM people WHERE person_id = p_person) THEN
    PERFORM licensing_refuse(p_what, 'unknown user ' || quote_literal(p_person)
      || ' (not in people)');
  END IF;
  IF NOT licensing_holds(p_person, p_role) THEN
    PERFORM licensing_refuse(p_what, p_person || ' is not an ' || p_role);
  END IF;
END $$""",
    f"""CREATE FUNCTION licensing_check_role(p_role text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF p_role IS NULL OR p_role NOT IN {ROLES!r} THEN
    RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'unknown role '
      || quote_literal(coalesce(p_role, '')) || ': one of {ROLE_LIST}';
  END IF;
END $$""",
    """CREATE FUNCTION licensing_set_group(p_person text, p_role text, p_grant boolean)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_person AND rolcanlogin) THEN
    IF p_grant THEN
      EXECUTE 'GRANT ' || quote_ident('licensing_' || p_role) || ' TO ' || quote_ident(p_person);
    ELSE
      EXECUTE 'REVOKE ' || quote_ident('licensing_' || p_role) || ' FROM '
        || quote_ident(p_person);
    END IF;
  END IF;
END $$""",
]

_ACTIONS = [
    (
        "licensing_grant_role_as(p_actor text, p_person text, p_role text, p_name text, "
        "p_email text, p_at timestamp)",
        "text",
        f"""DECLARE
  v_what text := 'grant of ' || p_role || ' to ' || p_person;
  v_action text := 'grant';
BEGIN
  PERFORM licensing_check_role(p_role);
  PERFORM pg_advisory_xact_lock({LOCK_KEY});
  IF EXISTS (SELECT 1 FROM role_grants WHERE role = 'admin' AND revoked_at IS NULL) THEN
    PERFORM licensing_require_role(p_actor, 'admin', v_what);
  ELSIF p_role = 'admin' THEN
    IF NOT pg_has_role(session_user, (SELECT relowner FROM pg_class
        WHERE oid = 'role_grants'::regclass), 'MEMBER') THEN
      PERFORM licensing_refuse(v_what, 'no admin yet; only the owner login may grant the first');
    END IF;
    v_action := 'bootstrap';
  ELSE
    PERFORM licensing_refuse(v_what, 'no admin yet; the first grant must be admin');
  END IF;
  IF licensing_holds(p_person, p_role) THEN
    PERFORM licensing_refuse(v_what, p_person || ' already holds ' || p_role);
  END IF;
  INSERT INTO people (person_id, name, email, created_at)
  VALUES (p_person, p_name, p_email, p_at) ON CONFLICT (person_id) DO NOTHING;
  INSERT INTO role_grants (person_id, role, granted_by, granted_at)
  VALUES (p_person, p_role, p_actor, p_at);
  PERFORM licensing_audit_append(p_actor, v_action, p_person || ':' || p_role, NULL,
    jsonb_build_object('person', p_person, 'role', p_role, 'name', p_name, 'email', p_email),
    p_at);
  PERFORM licensing_set_group(p_person, p_role, true);
  RETURN v_action;
END""",
    ),
    (
        "licensing_revoke_role_as(p_actor text, p_person text, p_role text, p_at timestamp)",
        "void",
        f"""DECLARE
  v_what text := 'revoke of ' || p_role || ' from ' || p_person;
BEGIN
  PERFORM licensing_check_role(p_role);
  PERFORM pg_advisory_xact_lock({LOCK_KEY});
  PERFORM licensing_require_role(p_actor, 'admin', v_what);
  IF NOT licensing_holds(p_person, p_role) THEN
    PERFORM licensing_refuse(v_what, p_person || ' does not hold ' || p_role);
  END IF;
  IF p_role = 'admin'
    AND (SELECT count(*) FROM role_grants WHERE role = 'admin' AND revoked_at IS NULL) = 1 THEN
    PERFORM licensing_refuse(v_what, p_person || ' is the last admin');
  END IF;
  UPDATE role_grants SET revoked_by = p_actor, revoked_at = p_at
  WHERE person_id = p_person AND role = p_role AND revoked_at IS NULL;
  PERFORM licensing_audit_append(p_actor, 'revoke', p_person || ':' || p_role, NULL,
    jsonb_build_object('person', p_person, 'role', p_role), p_at);
  PERFORM licensing_set_group(p_person, p_role, false);
END""",
    ),
    (
        "licensing_propose_change_as(p_actor text, p_kind text, p_tenant_id text, "
        "p_payload text, p_reason text, p_effective_from date, p_effective_until date, "
        "p_at timestamp)",
        "integer",
        f"""DECLARE
  v_id integer;
BEGIN
  PERFORM pg_advisory_xact_lock({LOCK_KEY});  -- no grant or revoke between check and write
  PERFORM licensing_require_role(p_actor, 'editor', 'proposal of ' || p_kind
    || coalesce(' for ' || p_tenant_id, ''));
  INSERT INTO change_requests (kind, tenant_id, payload, reason, effective_from,
    effective_until, status, proposed_by, proposed_at)
  VALUES (p_kind, p_tenant_id, p_payload, p_reason, p_effective_from, p_effective_until,
    'pending', p_actor, p_at)
  RETURNING request_id INTO v_id;
  PERFORM licensing_audit_append(p_actor, 'propose', 'change:' || v_id, p_tenant_id,
    jsonb_build_object('request_id', v_id, 'kind', p_kind, 'payload', p_payload::jsonb, 'reason', p_reason,
      'effective_from', p_effective_from, 'effective_until', p_effective_until), p_at);
  RETURN v_id;
END""",
    ),
    (
        "licensing_decide_change_as(p_actor text, p_request_id integer, p_decision text, "
        "p_note text, p_at timestamp)",
        "void",
        f"""DECLARE
  v_what text;
  v_request change_requests%ROWTYPE;
BEGIN
  PERFORM pg_advisory_xact_lock({LOCK_KEY});
  IF p_decision IS NULL OR p_decision NOT IN ('approved', 'rejected') THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'unknown decision ' || quote_literal(coalesce(p_decision, ''))
        || ': approved or rejected';
  END IF;
  v_what := CASE p_decision WHEN 'approved' THEN 'approval' ELSE 'rejection' END
    || ' of change #' || p_request_id;
  PERFORM licensing_require_role(p_actor, 'approver', v_what);
  SELECT * INTO v_request FROM change_requests WHERE request_id = p_request_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM licensing_refuse(v_what, 'no such change');
  END IF;
  IF v_request.status <> 'pending' THEN
    PERFORM licensing_refuse(v_what, 'it is already ' || v_request.status
      || ' (only a pending change can be decided)');
  END IF;
  IF v_request.proposed_by = p_actor THEN
    PERFORM licensing_refuse(v_what, p_actor
      || ' proposed it (four-eyes: a different approver must decide)');
  END IF;
  IF p_decision = 'rejected' AND coalesce(btrim(p_note), '') = '' THEN
    PERFORM licensing_refuse(v_what, 'a note saying why is required');
  END IF;
  UPDATE change_requests
  SET status = p_decision, decided_by = p_actor, decided_at = p_at, decision_note = p_note
  WHERE request_id = p_request_id;
  PERFORM licensing_audit_append(p_actor,
    CASE p_decision WHEN 'approved' THEN 'approve' ELSE 'reject' END,
    'change:' || p_request_id, v_request.tenant_id,
    jsonb_build_object('request_id', p_request_id, 'kind', v_request.kind, 'note', p_note), p_at);
END""",
    ),
    (
        "licensing_withdraw_change_as(p_actor text, p_request_id integer, p_at timestamp)",
        "void",
        f"""DECLARE
  v_what text := 'withdrawal of change #' || p_request_id;
  v_request change_requests%ROWTYPE;
BEGIN
  PERFORM pg_advisory_xact_lock({LOCK_KEY});
  PERFORM licensing_require_role(p_actor, 'editor', v_what);
  SELECT * INTO v_request FROM change_requests WHERE request_id = p_request_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM licensing_refuse(v_what, 'no such change');
  END IF;
  IF v_request.status <> 'pending' THEN
    PERFORM licensing_refuse(v_what, 'it is already ' || v_request.status
      || ' (only a pending change can be withdrawn)');
  END IF;
  IF v_request.proposed_by <> p_actor THEN
    PERFORM licensing_refuse(v_what, 'only its proposer ' || v_request.proposed_by
      || ' may withdraw it');
  END IF;
  UPDATE change_requests SET status = 'withdrawn', decided_at = p_at
  WHERE request_id = p_request_id;
  PERFORM licensing_audit_append(p_actor, 'withdraw', 'change:' || p_request_id,
    v_request.tenant_id, jsonb_build_object('request_id', p_request_id, 'kind', v_request.kind,
      'note', NULL), p_at);
END""",
    ),
]

# What each group role may call: the session's own actions (actor = session_user, now).
_PUBLIC = [
    (
        "licensing_grant_role(p_person text, p_role text, p_name text, p_email text)",
        "text",
        f"licensing_grant_role_as(session_user, p_person, p_role, p_name, p_email, {NOW})",
        "admin",
    ),
    (
        "licensing_revoke_role(p_person text, p_role text)",
        "void",
        f"licensing_revoke_role_as(session_user, p_person, p_role, {NOW})",
        "admin",
    ),
    (
        "licensing_propose_change(p_kind text, p_tenant_id text, p_payload text, "
        "p_reason text, p_effective_from date, p_effective_until date)",
        "integer",
        "licensing_propose_change_as(session_user, p_kind, p_tenant_id, p_payload, p_reason, "
        f"p_effective_from, p_effective_until, {NOW})",
        "editor",
    ),
    (
        "licensing_decide_change(p_request_id integer, p_decision text, p_note text)",
        "void",
        f"licensing_decide_change_as(session_user, p_request_id, p_decision, p_note, {NOW})",
        "approver",
    ),
    (
        "licensing_withdraw_change(p_request_id integer)",
        "void",
        f"licensing_withdraw_change_as(session_user, p_request_id, {NOW})",
        "editor",
    ),
]


# Writes revoked from PUBLIC and from every role but the owner that holds one.
_REVOKE_WRITES = """DO $$
DECLARE
  holder text;
BEGIN
  REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE_NAME FROM PUBLIC;
  FOR holder IN
    SELECT DISTINCT a.grantee::regrole::text FROM pg_class c, aclexplode(c.relacl) a
    WHERE c.oid = 'TABLE_NAME'::regclass AND a.grantee NOT IN (0, c.relowner)
      AND a.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
  LOOP
    EXECUTE 'REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE_NAME FROM ' || holder;
  END LOOP;
END $$"""


def _signature(declaration: str) -> str:
    """``name(p_a text, p_b int)`` -> ``name(text, int)`` (for GRANT, REVOKE and DROP)."""
    name, params = declaration.split("(", 1)
    types = [p.strip().split(" ", 1)[1] for p in params.rstrip(")").split(",") if p.strip()]
    return f"{name}({', '.join(types)})"


def _functions() -> list[str]:
    """Every function this revision creates, as signatures, helpers first."""
    helpers = [
        " ".join(h.split()).split("FUNCTION ", 1)[1].split(" RETURNS", 1)[0] for h in _HELPERS
    ]
    return [_signature(h) for h in [*helpers, *(a[0] for a in _ACTIONS), *(p[0] for p in _PUBLIC)]]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema: str = bind.execute(sa.text("SELECT current_schema()")).scalar_one()
    pinned = f"SET search_path = {bind.dialect.identifier_preparer.quote(schema)}, pg_temp"
    for role in ROLES:  # cluster-wide: another database (or a concurrent migration) made it
        op.execute(
            "DO $$ BEGIN\n"
            f"  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'licensing_{role}') THEN\n"
            f"    CREATE ROLE licensing_{role} NOLOGIN;\n"
            "  END IF;\n"
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;\n"
            "END $$"
        )
    for helper in _HELPERS:
        op.execute(helper.replace(" AS $$", f" SECURITY DEFINER {pinned} AS $$", 1))
    for declaration, returns, body in _ACTIONS:
        op.execute(
            f"CREATE FUNCTION {declaration} RETURNS {returns} LANGUAGE plpgsql "
            f"SECURITY DEFINER {pinned} AS $$\n{body} $$"
        )
    for declaration, returns, call, _ in _PUBLIC:
        op.execute(
            f"CREATE FUNCTION {declaration} RETURNS {returns} LANGUAGE sql "
            f"SECURITY DEFINER {pinned} AS $$ SELECT {call} $$"
        )
    for signature in _functions():
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    groups = ", ".join(f"licensing_{role}" for role in ROLES)
    for table in TABLES:
        op.execute(_REVOKE_WRITES.replace("TABLE_NAME", table))
        op.execute(f"GRANT SELECT ON {table} TO {groups}")
    op.execute(f"GRANT SELECT ON licensing_alembic_version TO {groups}")
    for declaration, _, _, role in _PUBLIC:
        op.execute(f"GRANT EXECUTE ON FUNCTION {_signature(declaration)} TO licensing_{role}")


def downgrade() -> None:
    """Drop the functions and this database's grants; the group roles stay (other databases
    on the cluster may use them)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    groups = ", ".join(f"licensing_{role}" for role in ROLES)
    for table in (*TABLES, "licensing_alembic_version"):
        op.execute(f"REVOKE ALL ON {table} FROM {groups}")
    for signature in reversed(_functions()):
        op.execute(f"DROP FUNCTION {signature}")
