"""The small-input loaders: schema conformance, whole-file errors, row quarantine."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from licensing_pipeline.contract import loaders, schemas
from licensing_pipeline.contract.errors import ContractError, MissingInputError

CONTRACTS_HEADER = (
    "contract_id,tenant_id,plan,addons,quota_overrides,start_date,end_date,status,enforcement\n"
)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def reasons(loaded: loaders.Loaded) -> dict[int, tuple[str | None, str]]:
    """line -> (field, reason) of the quarantined rows."""
    q = loaded.quarantined
    return {
        int(line): (None if pd.isna(field) else str(field), str(reason))
        for line, field, reason in zip(q["line"], q["field"], q["reason"], strict=True)
    }


def assert_schema(frame: pd.DataFrame, schema: dict[str, str]) -> None:
    assert list(frame.columns) == list(schema)
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        c: str(pd.Series(dtype=t).dtype) for c, t in schema.items()
    }


# --- tenants -----------------------------------------------------------------------------


def test_tenants_ignore_extra_columns_and_keep_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tenants.csv",
        "tenant_id,name,crm_id,segment\n"
        "t-1,Acme,x1,enterprise\n"
        "\n"
        ' t-2 ,"Beta, Inc",x2,\n'
        "t-3,Gamma\n"  # ragged
        ",Nobody,x4,smb\n"
        "t-1,Acme again,x5,smb\n",
    )
    loaded = loaders.load_tenants(tmp_path)

    assert loaded.path == path
    assert_schema(loaded.frame, schemas.TENANTS)
    assert loaded.frame["tenant_id"].tolist() == ["t-1", "t-2"]
    assert loaded.frame["name"].tolist() == ["Acme", "Beta, Inc"]
    assert pd.isna(loaded.frame.loc[1, "segment"])  # empty profile value: unknown
    assert pd.isna(loaded.frame.loc[0, "slack_channel"])  # column left out of the export
    assert reasons(loaded) == {
        5: (None, "expected 4 fields as in the header, found 2"),
        6: ("tenant_id", "missing tenant_id"),
        7: ("tenant_id", "duplicate tenant_id: an earlier line has the same value"),
    }
    q = loaded.quarantined
    assert set(q["source"]) == {"tenants"}
    assert set(q["file"]) == {str(path)}
    assert q.loc[q["line"] == 5, "raw"].item() == "t-3,Gamma"
    assert_schema(q, schemas.QUARANTINED_RECORDS)


def test_missing_required_column_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "tenants.csv", "id,name\nt-1,Acme\n")
    with pytest.raises(ContractError) as raised:
        loaders.load_tenants(tmp_path)
    error = raised.value
    assert (error.file, error.line, error.field) == (str(path), 1, "tenant_id")
    assert "tenant_id" in str(error) and "line 1" in str(error) and str(path) in str(error)


def test_missing_required_file_raises_missing_input(tmp_path: Path) -> None:
    with pytest.raises(MissingInputError) as raised:
        loaders.load_contracts(tmp_path)
    assert str(tmp_path / "contracts.csv") in str(raised.value)
    assert "LICENSING_DATA_DIR" in str(raised.value)


def test_empty_required_file_is_a_contract_error(tmp_path: Path) -> None:
    write(tmp_path, "tenants.csv", "")
    with pytest.raises(ContractError, match="empty"):
        loaders.load_tenants(tmp_path)


def test_multiline_quoted_field_keeps_later_line_numbers(tmp_path: Path) -> None:
    write(
        tmp_path,
        "tenants.csv",
        'tenant_id,name\nt-1,"Acme\nIndustries"\nt-2,Beta\n,Nobody\n',
    )
    loaded = loaders.load_tenants(tmp_path)
    assert loaded.frame["name"].tolist() == ["Acme\nIndustries", "Beta"]
    assert reasons(loaded) == {5: ("tenant_id", "missing tenant_id")}


def test_bytes_that_are_not_utf8_quarantine_only_their_row(tmp_path: Path) -> None:
    (tmp_path / "tenants.csv").write_bytes(
        b"\xef\xbb\xbftenant_id,name\nt-1,Acme\nt-2,Caf\xe9\nt-3,Gamma\n"
    )
    loaded = loaders.load_tenants(tmp_path)  # the BOM does not hide tenant_id either
    assert loaded.frame["tenant_id"].tolist() == ["t-1", "t-3"]
    assert reasons(loaded) == {3: (None, "not valid UTF-8 text")}
    assert loaded.quarantined["raw"].item() == "t-2,Caf\ufffd"


# --- contracts ---------------------------------------------------------------------------


def test_contracts_are_normalised(tmp_path: Path) -> None:
    write(
        tmp_path,
        "contracts.csv",
        CONTRACTS_HEADER
        + "c-1,t-1,starter,seats_pack_10; ;analytics;,,2026-01-01,,Active,HARD\n"
        + 'c-2,t-2,growth,,"{""api_calls"": 5000}",2026-01-01,2026-12-31,paused,soft\n',
    )
    loaded = loaders.load_contracts(tmp_path)
    frame = loaded.frame
    assert_schema(frame, schemas.CONTRACTS)
    assert loaded.quarantined.empty
    assert frame["addons"].tolist() == ["seats_pack_10;analytics", ""]
    assert frame["quota_overrides"].tolist() == ["{}", '{"api_calls": 5000}']
    assert frame["status"].tolist() == ["active", "paused"]
    assert frame["enforcement"].tolist() == ["hard", "soft"]
    assert frame.loc[0, "start_date"] == pd.Timestamp("2026-01-01")
    assert pd.isna(frame.loc[0, "end_date"])  # open-ended
    assert frame.loc[1, "end_date"] == pd.Timestamp("2026-12-31")


def test_bad_contract_rows_are_quarantined_and_good_rows_kept(tmp_path: Path) -> None:
    write(
        tmp_path,
        "contracts.csv",
        CONTRACTS_HEADER
        + "c-1,t-1,starter,,,2026-01-01,,active,hard\n"
        + "c-2,t-1,starter,,{not json,2026-01-01,,active,hard\n"
        + 'c-3,t-1,starter,,"{""api_calls"": -5}",2026-01-01,,active,hard\n'
        + "c-4,t-1,starter,,,2026-02-30,,active,hard\n"
        + "c-5,t-1,starter,,,2026-01-01,,frozen,hard\n"
        + "c-6,t-1,starter,,,2026-01-01,,active,medium\n"
        + "c-7,t-1,starter,,,2026-03-01,2026-02-01,active,hard\n"
        + "c-8,t-1,,,,2026-01-01,,active,hard\n"
        + "c-1,t-9,starter,,,2026-01-01,,active,hard\n"
        + "c-9,t-1,starter,,,01/02/2026,,active,hard\n",
    )
    loaded = loaders.load_contracts(tmp_path)
    assert loaded.frame["contract_id"].tolist() == ["c-1"]
    fields = {line: field for line, (field, _) in reasons(loaded).items()}
    assert fields == {
        3: "quota_overrides",
        4: "quota_overrides",
        5: "start_date",
        6: "status",
        7: "enforcement",
        8: "end_date",
        9: "plan",
        10: "contract_id",
        11: "start_date",
    }
    assert "YYYY-MM-DD" in reasons(loaded)[5][1]
    assert reasons(loaded)[6][1] == "status must be one of active | paused | cancelled"


def test_contracts_without_a_column_fail_naming_it(tmp_path: Path) -> None:
    header = CONTRACTS_HEADER.replace(",enforcement", "")
    write(tmp_path, "contracts.csv", header + "c-1,t-1,starter,,,2026-01-01,,active\n")
    with pytest.raises(ContractError) as raised:
        loaders.load_contracts(tmp_path)
    assert raised.value.field == "enforcement"
    assert raised.value.line == 1


# --- billing, residency, exceptions --------------------------------------------------------


def test_billing_records(tmp_path: Path) -> None:
    write(
        tmp_path,
        "billing_records.csv",
        "invoice_id,tenant_id,period,metric,billed_quantity,amount,currency\n"
        "i-1,t-1,2026-10,api_calls,1000,50.5,EUR\n"
        "i-2,t-1,2026-10,seats,7,,\n"
        "i-3,t-1,2026-13,api_calls,10,,\n"
        "i-4,t-1,2026-10,api_calls,-1,,\n"
        "i-5,t-1,2026-10,api_calls,lots,,\n"
        "i-6,t-1,2026-10,api_calls,,,\n"
        "i-7,t-1,2026-10,api_calls,5,five,EUR\n"
        "i-8,t-1,2026-10,api_calls,1e308,,\n"
        "i-9,t-1,2026-10,api_calls,9007199254740992,,\n",
    )
    loaded = loaders.load_billing_records(tmp_path)
    assert_schema(loaded.frame, schemas.BILLING_RECORDS)
    assert loaded.frame["billed_quantity"].tolist() == [1000.0, 7.0, 2.0**53]
    assert loaded.frame["amount"].iloc[0] == 50.5 and pd.isna(loaded.frame["amount"].iloc[1])
    assert reasons(loaded) == {
        4: ("period", "period must be a month like 2026-10 (YYYY-MM)"),
        5: ("billed_quantity", "billed_quantity is negative"),
        6: ("billed_quantity", "billed_quantity is not a number"),
        7: ("billed_quantity", "missing billed_quantity"),
        8: ("amount", "amount is not a number"),
        # Two such lines of one tenant and month would sum to infinity.
        9: (
            "billed_quantity",
            "billed_quantity is above 9,007,199,254,740,992, the largest quantity accepted",
        ),
    }


@pytest.mark.parametrize(
    "load, schema",
    [
        (loaders.load_billing_records, schemas.BILLING_RECORDS),
        (loaders.load_residency_configs, schemas.RESIDENCY_CONFIGS),
        (loaders.load_policy_exceptions, schemas.POLICY_EXCEPTIONS),
        (loaders.load_deployment_configs, schemas.DEPLOYMENT_CONFIGS),
    ],
)
def test_optional_inputs_may_be_absent(tmp_path: Path, load, schema) -> None:  # type: ignore[no-untyped-def]
    loaded = load(tmp_path)
    assert loaded.path is None
    assert loaded.frame.empty and loaded.quarantined.empty
    assert_schema(loaded.frame, schema)


def test_residency_jurisdictions_are_upper_case_and_any_wins(tmp_path: Path) -> None:
    write(
        tmp_path,
        "residency.csv",
        "tenant_id,allowed_jurisdictions,notes\n"
        "t-1,eu; uk,\n"
        "t-2,ANY,\n"
        "t-3,EU;any,\n"
        "t-4,,\n"
        "t-1,US,dup\n",
    )
    loaded = loaders.load_residency_configs(tmp_path)
    assert dict(
        zip(loaded.frame["tenant_id"], loaded.frame["allowed_jurisdictions"], strict=True)
    ) == {
        "t-1": "EU;UK",
        "t-2": "ANY",
        "t-3": "ANY",
    }
    assert {line: field for line, (field, _) in reasons(loaded).items()} == {
        5: "allowed_jurisdictions",
        6: "tenant_id",
    }


def test_policy_exceptions(tmp_path: Path) -> None:
    write(
        tmp_path,
        "exceptions.csv",
        "exception_id,tenant_id,check,subject,approved_by,expires_on,reason\n"
        "e-1,t-1,quota_exceeded,,cfo,2026-12-31,pilot\n"
        "e-2,t-1,feature_not_entitled,sso,cso,2026-12-31,\n"
        "e-3,t-1,made_up_check,sso,cso,2026-12-31,\n"
        "e-4,t-1,quota_exceeded,api_calls,cso,31.12.2026,\n"
        "e-5,t-1,quota_exceeded,seats,,2026-12-31,nobody signed\n",
    )
    loaded = loaders.load_policy_exceptions(tmp_path)
    assert_schema(loaded.frame, schemas.POLICY_EXCEPTIONS)
    assert loaded.frame["subject"].tolist() == ["", "sso"]
    assert loaded.frame["expires_on"].tolist() == [pd.Timestamp("2026-12-31")] * 2
    assert {line: field for line, (field, _) in reasons(loaded).items()} == {
        4: "check",
        5: "expires_on",
        6: "approved_by",
    }


# --- deployment configs --------------------------------------------------------------------

GOOD_DEPLOYMENT = (
    '{"tenant_id": "t-1", "deployment": "prod", "region": "eu-west-1", '
    '"enabled_features": ["sso", "api_access"], "quota_limits": {"api_calls": 100000}, '
    '"observed_at": "2026-10-01T01:30:00+02:00", "agent": "v2"}'
)


def test_deployment_configs(tmp_path: Path) -> None:
    write(
        tmp_path,
        "deployment_configs.jsonl",
        "\n".join(
            [
                GOOD_DEPLOYMENT,
                "",
                "{not json",
                '{"tenant_id": "t-1", "deployment": "dev", "enabled_features": [], '
                '"observed_at": "2026-10-01T01:30:00Z"}',
                '["a list"]',
                '{"deployment": "x", "enabled_features": [], "observed_at": "2026-10-01T00:00:00Z"}',
                '{"tenant_id": "t-2", "deployment": "x", "enabled_features": [], '
                '"observed_at": "2026-10-01T00:00:00"}',
                '{"tenant_id": "t-2", "deployment": "y", "enabled_features": "sso", '
                '"observed_at": "2026-10-01T00:00:00Z"}',
            ]
        ),
    )
    loaded = loaders.load_deployment_configs(tmp_path)
    frame = loaded.frame
    assert_schema(frame, schemas.DEPLOYMENT_CONFIGS)
    assert frame["deployment"].tolist() == ["prod", "dev"]
    assert frame["observed_at"].tolist() == [  # UTC
        pd.Timestamp("2026-09-30 23:30:00"),
        pd.Timestamp("2026-10-01 01:30:00"),
    ]
    assert frame["enabled_features"].tolist() == ['["api_access", "sso"]', "[]"]
    assert frame["quota_limits"].tolist() == ['{"api_calls": 100000}', "{}"]
    assert pd.isna(frame.loc[1, "region"])
    assert reasons(loaded) == {
        3: (None, "not valid JSON"),
        5: (None, "not a JSON object"),
        6: ("tenant_id", "missing tenant_id"),
        7: ("observed_at", "observed_at is not RFC 3339 with an offset"),
        8: ("enabled_features", "enabled_features must be a list of feature names"),
    }


def test_a_deployment_may_say_which_enforcement_feed_version_it_enforces(tmp_path: Path) -> None:
    def line(deployment: str, version: object) -> str:
        return (
            f'{{"tenant_id": "t-1", "deployment": "{deployment}", "enabled_features": [], '
            f'"observed_at": "2026-10-01T00:00:00Z", "enforcement_feed_version": {version}}}'
        )

    write(
        tmp_path,
        "deployment_configs.jsonl",
        "\n".join([GOOD_DEPLOYMENT, line("a", '" 2026.11.0 "'), line("b", '""'), line("c", 7)]),
    )
    loaded = loaders.load_deployment_configs(tmp_path)
    versions = loaded.frame.set_index("deployment")["enforcement_feed_version"]
    assert versions["a"] == "2026.11.0"
    assert pd.isna(versions["prod"]) and pd.isna(versions["b"])  # absent or blank: not reported
    assert reasons(loaded) == {
        4: ("enforcement_feed_version", "enforcement_feed_version must be a string")
    }


def test_deployment_configs_may_be_gzipped(tmp_path: Path) -> None:
    path = tmp_path / "deployment_configs.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(GOOD_DEPLOYMENT + "\n")
    loaded = loaders.load_deployment_configs(tmp_path)
    assert loaded.path == path
    assert len(loaded.frame) == 1


def test_deployment_configs_in_two_forms_is_ambiguous(tmp_path: Path) -> None:
    write(tmp_path, "deployment_configs.jsonl", GOOD_DEPLOYMENT + "\n")
    with gzip.open(tmp_path / "deployment_configs.jsonl.gz", "wt") as handle:
        handle.write(GOOD_DEPLOYMENT + "\n")
    with pytest.raises(ContractError, match="keep only one"):
        loaders.load_deployment_configs(tmp_path)


@pytest.mark.parametrize(
    "load, name",
    [
        (loaders.load_tenants, loaders.TENANTS_FILE),
        (loaders.load_billing_records, loaders.BILLING_RECORDS_FILE),
        (loaders.load_deployment_configs, loaders.DEPLOYMENT_CONFIGS_FILE),
    ],
)
def test_a_link_out_of_the_data_folder_is_refused_unread(  # type: ignore[no-untyped-def]
    tmp_path: Path, load, name: str
) -> None:
    """Its lines would otherwise land in the quarantine, /etc/passwd included."""
    secret = write(tmp_path, "secret.txt", "tenant_id\nroot:x:0:0:root:/root:/bin/bash\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / name).symlink_to(secret)
    with pytest.raises(ContractError) as raised:
        load(data)
    assert (
        str(raised.value)
        == f"{data / name}: a symbolic link to a file outside the data folder: not read"
    )


def test_a_link_inside_the_data_folder_is_read(tmp_path: Path) -> None:
    write(tmp_path, "tenants-2026.csv", "tenant_id\nt-1\n")
    (tmp_path / loaders.TENANTS_FILE).symlink_to("tenants-2026.csv")
    assert loaders.load_tenants(tmp_path).frame["tenant_id"].tolist() == ["t-1"]
