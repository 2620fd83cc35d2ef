"""Column layouts of every table the pipeline reads or writes: one name per concept.

Inputs follow the data contract (``shared/spec/data-contract.md``); derived tables use
the same names. Loaders return frames with exactly these columns and dtypes, so an
empty input still yields a well-typed (empty) table in the warehouse.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

STRING = "string"
FLOAT = "float64"
INT = "Int64"
BOOL = "boolean"
TIMESTAMP = "datetime64[us]"  # naive, UTC
# The largest quantity an input may carry (2**53: above it a double no longer counts by
# ones). Sums of such values stay finite, so no aggregate overflows to infinity.
MAX_QUANTITY = 2**53

# --- inputs (one per file of the data contract) ----------------------------------------

TENANTS: dict[str, str] = {
    "tenant_id": STRING,
    "name": STRING,
    "home_region": STRING,
    "segment": STRING,
    "compliance_owner": STRING,
    "slack_channel": STRING,
}

CONTRACTS: dict[str, str] = {
    "contract_id": STRING,
    "tenant_id": STRING,
    "plan": STRING,
    "addons": STRING,  # ';'-joined add-on names, '' for none
    "quota_overrides": STRING,  # JSON object text, '{}' for none
    "start_date": TIMESTAMP,  # midnight of the ISO date
    "end_date": TIMESTAMP,  # NaT: open-ended; inclusive
    "status": STRING,  # active | paused | cancelled
    "enforcement": STRING,  # hard | soft
}

BILLING_RECORDS: dict[str, str] = {
    "invoice_id": STRING,
    "tenant_id": STRING,
    "period": STRING,  # YYYY-MM
    "metric": STRING,
    "billed_quantity": FLOAT,
    "amount": FLOAT,
    "currency": STRING,
}

DEPLOYMENT_CONFIGS: dict[str, str] = {
    "tenant_id": STRING,
    "deployment": STRING,
    "region": STRING,
    "enabled_features": STRING,  # JSON list text
    "quota_limits": STRING,  # JSON object text
    "observed_at": TIMESTAMP,
    "enforcement_feed_version": STRING,  # the feed version it enforces; <NA>: not reported
}

RESIDENCY_CONFIGS: dict[str, str] = {
    "tenant_id": STRING,
    "allowed_jurisdictions": STRING,  # ';'-joined, upper case, or 'ANY'
}

POLICY_EXCEPTIONS: dict[str, str] = {
    "exception_id": STRING,
    "tenant_id": STRING,
    "check": STRING,
    "subject": STRING,  # '' or '*': any subject
    "approved_by": STRING,
    "expires_on": TIMESTAMP,
    "reason": STRING,
}

# usage_events lives only in the warehouse (DuckDB), never in pandas.
USAGE_EVENTS_SQL: dict[str, str] = {
    "source": "VARCHAR",
    "id": "VARCHAR",
    "type": "VARCHAR",
    "tenant_id": "VARCHAR",  # the CloudEvents subject
    "time": "TIMESTAMP",  # UTC
    "user_id": "VARCHAR",
    "feature": "VARCHAR",
    "region": "VARCHAR",
    "data": "VARCHAR",  # the event's data object as JSON text (Parquet: built from its columns)
    "file": "VARCHAR",
    "line": "BIGINT",  # 1-based line (JSON Lines) or row (Parquet)
}

# The sources that quarantine rows, each into its own table, gathered by quarantined_records.
QUARANTINE_SOURCES = (
    "tenants",
    "contracts",
    "usage_events",
    "billing_records",
    "deployment_configs",
    "residency_configs",
    "policy_exceptions",
)

QUARANTINED_RECORDS: dict[str, str] = {
    "source": STRING,  # one of QUARANTINE_SOURCES
    "file": STRING,
    "line": INT,
    "field": STRING,
    "raw": STRING,
    "reason": STRING,
}

# --- warehouse models (dbt) ------------------------------------------------------------
# usage_daily:         tenant_id, metric, usage_date (DATE), quantity (DOUBLE), events (BIGINT)
# usage_monthly:       tenant_id, metric, period ('YYYY-MM'), quantity (DOUBLE), events (BIGINT)
# feature_usage_daily: tenant_id, feature, usage_date, events
# region_usage_daily:  tenant_id, region, usage_date, events
# tenant_activity_daily: tenant_id, usage_date, events   (every event, whatever its type)

# --- compliance --------------------------------------------------------------------------

# The approved change requests of the licensing repository (``change_kinds.approved_changes``),
# as the approved_changes asset hands them to the override layer.
APPROVED_CHANGES: dict[str, str] = {
    "request_id": INT,
    "kind": STRING,
    "tenant_id": STRING,
    "payload": STRING,  # the kind's JSON object
    "reason": STRING,
    "effective_from": TIMESTAMP,
    "effective_until": TIMESTAMP,  # NaT: open-ended; inclusive
    "proposed_by": STRING,
    "decided_by": STRING,
    "decided_at": TIMESTAMP,
}

EFFECTIVE_ENTITLEMENTS: dict[str, str] = {
    "tenant_id": STRING,
    "period": STRING,  # YYYY-MM
    "resolved_on": TIMESTAMP,  # the day the contract was looked up on
    "contract_id": STRING,
    "contract_status": STRING,  # active | paused | cancelled | expired | none
    "entitled": BOOL,  # an active contract is in force on resolved_on
    "enforcement": STRING,
    "plan": STRING,
    "addons": STRING,
    "segment": STRING,
    "features": STRING,  # JSON list text, sorted
    "quotas": STRING,  # JSON object text {metric: limit}
    "applied_changes": STRING,  # JSON list of the approved change requests that shaped the row
}

# usage_forecasts: where each tenant's metric ends the month still running (compliance/forecast.py).
USAGE_FORECASTS: dict[str, str] = {
    "tenant_id": STRING,
    "metric": STRING,
    "period": STRING,  # YYYY-MM, the as-of month
    "as_of": TIMESTAMP,
    "aggregation": STRING,
    "month_to_date": FLOAT,
    "projected_total": FLOAT,  # at month end, as the quota check will count it
    "limit": FLOAT,  # <NA>: no quota (unlimited) or no active contract
    "projected_exhaustion_day": TIMESTAMP,  # the first day the projection reaches the limit
    "method": STRING,  # weekday_pace | pace | trend | held
    "days_observed": INT,  # days of history read (at most the month so far or 4 weeks)
}

# What a check measured, in every table that carries a check result on.
_MEASURED: dict[str, str] = {
    "tenant_id": STRING,
    "check": STRING,
    "subject": STRING,
    "period": STRING,  # YYYY-MM, or YYYY-MM-DD for usage_anomaly
    "observed": FLOAT,
    "allowed": FLOAT,
}

# What each check family asset emits; the policy turns these into findings.
CHECK_RESULTS: dict[str, str] = {
    **_MEASURED,
    "enforcement": STRING,  # hard | soft | <NA> when no contract applies
    "details": STRING,
}

COMPLIANCE_FINDINGS: dict[str, str] = {
    "finding_id": STRING,
    **_MEASURED,
    "severity": STRING,
    "action": STRING,
    "status": STRING,
    "policy_version": STRING,
    "catalog_version": STRING,
    "first_detected_at": TIMESTAMP,
    "last_detected_at": TIMESTAMP,
    "details": STRING,
}

# The repository's record of a finding: the contract's columns plus internal ones that the
# contract's outputs never show (the bundle's content hash, the rule that fired, the exception
# that waived it).
FINDING_RECORDS: dict[str, str] = {
    **COMPLIANCE_FINDINGS,
    "policy_hash": STRING,
    "rule_id": STRING,
    "exception_id": STRING,
}

# policy_evaluations: every check result with the policy's decision and why (internal).
POLICY_EVALUATIONS: dict[str, str] = {
    "finding_id": STRING,
    **_MEASURED,
    "enforcement": STRING,  # hard | soft | <NA>
    "segment": STRING,  # tenants.csv, lower case; <NA> when unknown
    "jurisdiction": STRING,  # of the tenant's home_region in the catalog; <NA> when unknown
    "ratio": FLOAT,  # observed / allowed; inf when allowed is 0 and observed > 0
    "consecutive_periods": INT,  # 1 = first period of the breach
    "rule_id": STRING,  # the rule that fired ('fallback' when none matched)
    "severity": STRING,
    "rule_action": STRING,  # the rule's action before grace and escalation
    "action": STRING,
    "escalation_steps": INT,
    "in_grace": BOOL,
    "status": STRING,  # open | waived
    "exception_id": STRING,
    "policy_version": STRING,
    "policy_hash": STRING,
    "catalog_version": STRING,
    "as_of": TIMESTAMP,
    "details": STRING,  # for the customer (from the check)
    "reason": STRING,  # internal: why the rule fired and what changed the action
}

# enforcement_actions: the current action per tenant and capability (none: no row).
ENFORCEMENT_ACTIONS: dict[str, str] = {
    "tenant_id": STRING,
    "capability": STRING,  # account | feature.<name> | metric.<name> | region.<name>
    "action": STRING,
    "severity": STRING,
    "check": STRING,
    "subject": STRING,
    "period": STRING,
    "finding_id": STRING,
    "rule_id": STRING,
    "policy_version": STRING,
    "policy_hash": STRING,
    "as_of": TIMESTAMP,
    "details": STRING,
}

CHECKS = (
    "quota_exceeded",
    "quota_near_limit",
    "feature_not_entitled",
    "inactive_contract_usage",
    "residency_violation",
    "config_feature_not_entitled",
    "config_feature_missing",
    "config_quota_mismatch",
    "config_policy_outdated",
    "unbilled_usage",
    "overbilled_usage",
    "usage_anomaly",
)
SEVERITIES = ("info", "warning", "critical")
ACTIONS = ("notify", "warn", "throttle", "suspend")
STATUSES = ("open", "waived", "resolved")
CONTRACT_STATUSES = ("active", "paused", "cancelled")
ENFORCEMENTS = ("hard", "soft")


def empty_frame(schema: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in schema.items()})


def conform(frame: pd.DataFrame, schema: Mapping[str, str]) -> pd.DataFrame:
    """Exactly the schema's columns, in order and dtype (missing columns become nulls)."""
    out = pd.DataFrame(index=frame.index)
    for column, dtype in schema.items():
        if column not in frame.columns:
            out[column] = pd.Series(index=frame.index, dtype=dtype)
        elif dtype == TIMESTAMP:
            stamps = pd.to_datetime(frame[column], utc=True)
            out[column] = stamps.dt.tz_localize(None).astype(TIMESTAMP)
        else:
            out[column] = frame[column].astype(dtype)
    return out.reset_index(drop=True)
