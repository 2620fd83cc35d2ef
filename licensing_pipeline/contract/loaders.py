"""Loaders for the small inputs of the data contract (everything but ``usage/`` and the catalog).

Each loader reads one file and returns a frame conformed to its schema plus the rows it had
to quarantine. A row-level problem never stops the run: the row is quarantined with its file,
line, field and reason, and the good rows are kept. Only a problem with the whole file (a
required file or column missing) raises, as ``MissingInputError`` or ``ContractError``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from licensing_pipeline.contract import schemas
from licensing_pipeline.contract.errors import ContractError, MissingInputError, link_outside
from licensing_pipeline.contract.usage import LINK_OUTSIDE, RFC3339_WITH_OFFSET

TENANTS_FILE = "tenants.csv"
CONTRACTS_FILE = "contracts.csv"
BILLING_RECORDS_FILE = "billing_records.csv"
DEPLOYMENT_CONFIGS_FILE = "deployment_configs.jsonl"
RESIDENCY_FILE = "residency.csv"
EXCEPTIONS_FILE = "exceptions.csv"

_ISO_DATE = r"\d{4}-\d{2}-\d{2}"
_PERIOD = r"\d{4}-(0[1-9]|1[0-2])"
_LINE = "_line"  # bookkeeping columns carried next to the data until the frame is conformed
_RAW = "_raw"


@dataclass(frozen=True)
class Loaded:
    """One input: its rows (conformed to the schema) and the rows quarantined from it."""

    frame: pd.DataFrame
    quarantined: pd.DataFrame
    path: Path | None = None  # the file read; None when an optional input is absent


def quarantine_frame(rows: Iterable[dict[str, Any]] = ()) -> pd.DataFrame:
    """Rows with keys source, file, line, field, raw, reason as a QUARANTINED_RECORDS frame."""
    frame = pd.DataFrame(list(rows), columns=list(schemas.QUARANTINED_RECORDS))
    return schemas.conform(frame, schemas.QUARANTINED_RECORDS)


# --- reading ---------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    """The file as text; bytes that are not UTF-8 survive as surrogates, so only their row
    is quarantined instead of the whole file failing. A link out of the data folder (the
    file's folder) is refused unread: its lines would land in the quarantine."""
    if link_outside(path, path.parent):
        raise ContractError(LINK_OUTSIDE, file=path)
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise ContractError(f"cannot read the file: {exc}", file=path) from None
    return data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")


def _has_bad_bytes(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _printable(text: str) -> str:
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def _quarantine_row(
    source: str, path: Path, line: int, raw: str, field: str | None, reason: str
) -> dict[str, Any]:
    return {
        "source": source,
        "file": str(path),
        "line": line,
        "field": field if isinstance(field, str) else None,
        "raw": _printable(raw),
        "reason": reason,
    }


class _Rows:
    """A frame of text columns plus ``_line``/``_raw``, and the first problem of each row.

    ``early`` holds rows quarantined before they could become a frame row (wrong number of
    fields, bytes that are not UTF-8).
    """

    def __init__(
        self, frame: pd.DataFrame, source: str, path: Path, early: list[dict[str, Any]]
    ) -> None:
        self.frame = frame.reset_index(drop=True)
        self.source = source
        self.path = path
        self.early = early
        self.field = pd.Series(pd.NA, index=self.frame.index, dtype="string")
        self.reason = pd.Series(pd.NA, index=self.frame.index, dtype="string")

    def ok(self) -> pd.Series:
        return self.reason.isna()

    def flag(self, mask: pd.Series, field: str | None, reason: str) -> None:
        """Quarantine rows in ``mask`` (the first problem of a row wins)."""
        new = mask.astype("boolean").fillna(False).astype(bool) & self.ok()
        self.reason[new] = reason
        self.field[new] = field if field is not None else pd.NA

    def require(self, *columns: str) -> None:
        for column in columns:
            self.flag(self.frame[column] == "", column, f"missing {column}")

    def one_of(self, column: str, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        values = self.frame[column].str.lower()
        self.flag(
            (values != "") & ~values.isin(allowed),
            column,
            f"{column} must be one of {' | '.join(allowed)}",
        )
        self.frame[column] = values

    def date(self, column: str) -> pd.Series:
        """ISO dates (YYYY-MM-DD) as timestamps; empty stays NaT, anything else is flagged."""
        text = self.frame[column]
        parsed = pd.to_datetime(text.where(text != ""), format="%Y-%m-%d", errors="coerce")
        bad = (text != "") & (~text.str.fullmatch(_ISO_DATE) | parsed.isna())
        self.flag(bad, column, f"{column} is not a date (YYYY-MM-DD)")
        return parsed

    def number(self, column: str, *, quantity: bool) -> pd.Series:
        """Numbers; a quantity must be non-negative and at most MAX_QUANTITY (so the sums
        of a tenant's lines stay finite)."""
        text = self.frame[column]
        values = pd.to_numeric(text.where(text != ""), errors="coerce").astype("float64")
        self.flag((text != "") & ~np.isfinite(values), column, f"{column} is not a number")
        if quantity:
            self.flag(values < 0, column, f"{column} is negative")
            self.flag(
                values > schemas.MAX_QUANTITY,
                column,
                f"{column} is above {schemas.MAX_QUANTITY:,}, the largest quantity accepted",
            )
        return values

    def unique(self, column: str) -> None:
        """Later rows repeating a key already kept are ambiguous: keep the first."""
        keys = self.frame[column].where(self.ok())
        self.flag(
            self.ok() & keys.notna() & keys.duplicated(keep="first"),
            column,
            f"duplicate {column}: an earlier line has the same value",
        )

    def result(self, frame: pd.DataFrame, schema: dict[str, str]) -> Loaded:
        good = self.ok()
        bad = self.frame[~good]
        late = [
            _quarantine_row(self.source, self.path, int(line), raw, field, reason)
            for line, raw, field, reason in zip(
                bad[_LINE], bad[_RAW], self.field[~good], self.reason[~good], strict=True
            )
        ]
        quarantined = quarantine_frame(sorted([*self.early, *late], key=lambda r: r["line"]))
        return Loaded(schemas.conform(frame[good], schema), quarantined, self.path)


@dataclass(frozen=True)
class _CsvSpec:
    source: str  # the source asset the rows belong to
    file_name: str
    schema: dict[str, str]
    required_columns: tuple[str, ...]  # must be in the header: they change a compliance decision
    required_values: tuple[str, ...] = ()
    required_file: bool = False


def _read_csv(path: Path, spec: _CsvSpec) -> _Rows:
    """Tokenise with the csv module, which (unlike pandas) keeps each record's first line and
    text, then hand the rows to pandas for column-wise validation."""
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    physical = io.StringIO(text, newline="").readlines()
    header: list[str] | None = None
    header_line = 1
    records: list[list[str]] = []
    lines: list[int] = []
    raws: list[str] = []
    early: list[tuple[int, str, str]] = []
    end = 0
    try:
        for row in reader:
            start, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank line
            raw = "".join(physical[start - 1 : end]).rstrip("\r\n")
            if header is None:
                header = [cell.strip().removeprefix("\ufeff") for cell in row]
                header_line = start
            elif _has_bad_bytes(raw):
                early.append((start, raw, "not valid UTF-8 text"))
            elif len(row) != len(header):
                early.append(
                    (
                        start,
                        raw,
                        f"expected {len(header)} fields as in the header, found {len(row)}",
                    )
                )
            else:
                records.append([cell.strip() for cell in row])
                lines.append(start)
                raws.append(raw)
    except csv.Error as exc:
        raise ContractError(f"not a readable CSV file: {exc}", file=path, line=end + 1) from None
    if header is None:
        if spec.required_file:
            raise ContractError(
                f"the file is empty; expected a header line with {', '.join(spec.schema)}",
                file=path,
                line=1,
            )
        header = list(spec.required_columns)
    if _has_bad_bytes(",".join(header)):
        raise ContractError("the header is not valid UTF-8 text", file=path, line=header_line)
    for column in spec.required_columns:
        if column not in header:
            raise ContractError(
                f"missing required column '{column}' (the header has: {', '.join(header)})",
                file=path,
                line=header_line,
                field=column,
            )
    for column in spec.schema:
        if header.count(column) > 1:
            raise ContractError(
                f"column '{column}' appears more than once in the header",
                file=path,
                line=header_line,
                field=column,
            )
    present = {c: header.index(c) for c in spec.schema if c in header}
    frame = pd.DataFrame(
        {
            column: pd.Series(
                [record[present[column]] for record in records]
                if column in present
                else [""] * len(records),
                dtype="string",
            )
            for column in spec.schema
        }
    )
    frame[_LINE] = pd.Series(lines, dtype="int64")
    frame[_RAW] = pd.Series(raws, dtype="string")
    rows = _Rows(
        frame,
        spec.source,
        path,
        [_quarantine_row(spec.source, path, line, raw, None, why) for line, raw, why in early],
    )
    rows.require(*spec.required_values)
    return rows


def _load_csv(data_dir: Path, spec: _CsvSpec, validate: Callable[[_Rows], pd.DataFrame]) -> Loaded:
    path = Path(data_dir) / spec.file_name
    if not path.is_file():
        if spec.required_file:
            raise MissingInputError(path, spec.file_name)
        return Loaded(schemas.empty_frame(spec.schema), quarantine_frame(), None)
    rows = _read_csv(path, spec)
    return rows.result(validate(rows), spec.schema)


# --- one loader per file ----------------------------------------------------------------


def _empty_to_na(frame: pd.DataFrame, *columns: str) -> None:
    for column in columns:
        frame[column] = frame[column].replace("", pd.NA)


TENANTS_SPEC = _CsvSpec(
    source="tenants",
    file_name=TENANTS_FILE,
    schema=schemas.TENANTS,
    required_columns=("tenant_id",),
    required_values=("tenant_id",),
    required_file=True,
)


def load_tenants(data_dir: Path) -> Loaded:
    """``tenants.csv``: only tenant_id is required; the profile columns are for routing."""

    def validate(rows: _Rows) -> pd.DataFrame:
        rows.unique("tenant_id")
        frame = rows.frame.copy()
        _empty_to_na(frame, "name", "home_region", "segment", "compliance_owner", "slack_channel")
        return frame

    return _load_csv(data_dir, TENANTS_SPEC, validate)


CONTRACTS_SPEC = _CsvSpec(
    source="contracts",
    file_name=CONTRACTS_FILE,
    schema=schemas.CONTRACTS,
    required_columns=tuple(schemas.CONTRACTS),
    required_values=("contract_id", "tenant_id", "plan", "start_date", "status", "enforcement"),
    required_file=True,
)


def _quota_overrides(text: str) -> str | None:
    """Normalised JSON text, or None when it is not an object of non-negative numbers."""
    if text == "":
        return "{}"
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    for limit in value.values():
        if isinstance(limit, bool) or not isinstance(limit, int | float):
            return None
        if not math.isfinite(limit) or limit < 0:
            return None
    return json.dumps(value, sort_keys=True)


def _join_list(text: pd.Series, *, upper: bool = False) -> pd.Series:
    def normalise(value: str) -> str:
        names = [part.strip() for part in value.split(";")]
        return ";".join(n.upper() if upper else n for n in names if n)

    return text.map(normalise).astype("string")


def load_contracts(data_dir: Path) -> Loaded:
    """``contracts.csv``: every column counts for the entitlement, so all must be present."""

    def validate(rows: _Rows) -> pd.DataFrame:
        frame = rows.frame
        start = rows.date("start_date")
        end = rows.date("end_date")
        rows.flag(end < start, "end_date", "end_date is before start_date")
        rows.one_of("status", schemas.CONTRACT_STATUSES)
        rows.one_of("enforcement", schemas.ENFORCEMENTS)
        overrides = frame["quota_overrides"].map(_quota_overrides)
        rows.flag(
            overrides.isna(),
            "quota_overrides",
            'quota_overrides must be a JSON object of non-negative limits, e.g. {"api_calls": 5000}',
        )
        rows.unique("contract_id")
        out = frame.copy()
        out["addons"] = _join_list(frame["addons"])
        out["quota_overrides"] = overrides
        out["start_date"] = start
        out["end_date"] = end
        return out

    return _load_csv(data_dir, CONTRACTS_SPEC, validate)


BILLING_RECORDS_SPEC = _CsvSpec(
    source="billing_records",
    file_name=BILLING_RECORDS_FILE,
    schema=schemas.BILLING_RECORDS,
    required_columns=("tenant_id", "period", "metric", "billed_quantity"),
    required_values=("tenant_id", "period", "metric", "billed_quantity"),
)


def load_billing_records(data_dir: Path) -> Loaded:
    """``billing_records.csv`` (optional): one invoiced quantity per tenant, month and metric."""

    def validate(rows: _Rows) -> pd.DataFrame:
        frame = rows.frame
        rows.flag(
            ~frame["period"].str.fullmatch(_PERIOD) & (frame["period"] != ""),
            "period",
            "period must be a month like 2026-10 (YYYY-MM)",
        )
        quantity = rows.number("billed_quantity", quantity=True)
        amount = rows.number("amount", quantity=False)
        out = frame.copy()
        out["billed_quantity"] = quantity
        out["amount"] = amount
        _empty_to_na(out, "invoice_id", "currency")
        return out

    return _load_csv(data_dir, BILLING_RECORDS_SPEC, validate)


RESIDENCY_SPEC = _CsvSpec(
    source="residency_configs",
    file_name=RESIDENCY_FILE,
    schema=schemas.RESIDENCY_CONFIGS,
    required_columns=("tenant_id", "allowed_jurisdictions"),
    required_values=("tenant_id",),
)


def load_residency_configs(data_dir: Path) -> Loaded:
    """``residency.csv`` (optional): ``ANY`` anywhere in the list means unrestricted."""

    def validate(rows: _Rows) -> pd.DataFrame:
        allowed = _join_list(rows.frame["allowed_jurisdictions"], upper=True)
        rows.flag(
            allowed == "",
            "allowed_jurisdictions",
            "missing allowed_jurisdictions (use ANY for no restriction)",
        )
        rows.unique("tenant_id")
        out = rows.frame.copy()
        out["allowed_jurisdictions"] = allowed.where(
            ~allowed.str.split(";").map(lambda names: "ANY" in names), "ANY"
        )
        return out

    return _load_csv(data_dir, RESIDENCY_SPEC, validate)


EXCEPTIONS_SPEC = _CsvSpec(
    source="policy_exceptions",
    file_name=EXCEPTIONS_FILE,
    schema=schemas.POLICY_EXCEPTIONS,
    required_columns=("exception_id", "tenant_id", "check", "subject", "approved_by", "expires_on"),
    # An exception nobody approved waives nothing: quarantined, so it is seen, not ignored.
    required_values=("exception_id", "tenant_id", "check", "approved_by", "expires_on"),
)


def load_policy_exceptions(data_dir: Path) -> Loaded:
    """``exceptions.csv`` (optional): an empty subject waives the check for any subject."""

    def validate(rows: _Rows) -> pd.DataFrame:
        frame = rows.frame
        rows.flag(
            (frame["check"] != "") & ~frame["check"].isin(schemas.CHECKS),
            "check",
            "check is not one of the data contract's checks",
        )
        expires = rows.date("expires_on")
        rows.unique("exception_id")
        out = frame.copy()
        out["expires_on"] = expires
        _empty_to_na(out, "approved_by", "reason")
        return out

    return _load_csv(data_dir, EXCEPTIONS_SPEC, validate)


# --- deployment configs (JSON Lines) ----------------------------------------------------

DEPLOYMENT_SOURCE = "deployment_configs"


def _deployment_row(obj: Any) -> tuple[dict[str, Any] | None, str | None, str]:
    """(row, field, reason): the row when the object is usable, else the first problem."""
    if not isinstance(obj, dict):
        return None, None, "not a JSON object"
    row: dict[str, Any] = {}
    for key in ("tenant_id", "deployment"):
        value = obj.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            return None, key, f"missing {key}"
        row[key] = value.strip()
    region = obj.get("region")
    if region is not None and not isinstance(region, str):
        return None, "region", "region must be a string"
    row["region"] = region or None
    features = obj.get("enabled_features")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        return None, "enabled_features", "enabled_features must be a list of feature names"
    row["enabled_features"] = json.dumps(sorted(set(features)))
    limits = obj.get("quota_limits") or {}
    overrides = _quota_overrides(json.dumps(limits)) if isinstance(limits, dict) else None
    if overrides is None:
        return None, "quota_limits", "quota_limits must be an object of non-negative limits"
    row["quota_limits"] = overrides
    observed_at = obj.get("observed_at")
    if not isinstance(observed_at, str) or not observed_at:
        return None, "observed_at", "missing observed_at"
    row["observed_at"] = observed_at
    feed_version = obj.get("enforcement_feed_version")
    if feed_version is not None and not isinstance(feed_version, str):
        return None, "enforcement_feed_version", "enforcement_feed_version must be a string"
    row["enforcement_feed_version"] = (feed_version or "").strip() or None
    return row, None, ""


def load_deployment_configs(data_dir: Path) -> Loaded:
    """``deployment_configs.jsonl`` (or ``.jsonl.gz``, optional): one observation per line."""
    plain = Path(data_dir) / DEPLOYMENT_CONFIGS_FILE
    packed = plain.with_name(plain.name + ".gz")
    if plain.is_file() and packed.is_file():
        raise ContractError(
            f"both {plain.name} and {packed.name} exist; keep only one", file=plain.parent
        )
    path = plain if plain.is_file() else packed
    if not path.is_file():
        return Loaded(schemas.empty_frame(schemas.DEPLOYMENT_CONFIGS), quarantine_frame(), None)
    good: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []

    def quarantine(line: int, raw: str, field: str | None, reason: str) -> None:
        bad.append(_quarantine_row(DEPLOYMENT_SOURCE, path, line, raw, field, reason))

    for number, raw in enumerate(_read_text(path).split("\n"), start=1):
        raw = raw.rstrip("\r")
        if not raw.strip():
            continue
        if _has_bad_bytes(raw):
            quarantine(number, raw, None, "not valid UTF-8 text")
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            quarantine(number, raw, None, "not valid JSON")
            continue
        row, field_name, reason = _deployment_row(obj)
        if row is None:
            quarantine(number, raw, field_name, reason)
        else:
            good.append({**row, _LINE: number, _RAW: raw})
    frame = pd.DataFrame(good, columns=[*schemas.DEPLOYMENT_CONFIGS, _LINE, _RAW])
    observed = frame["observed_at"].astype("string")
    parsed = pd.to_datetime(
        observed.str.upper(), format="ISO8601", utc=True, errors="coerce"
    ).dt.tz_localize(None)
    bad_time = ~observed.str.fullmatch(RFC3339_WITH_OFFSET).fillna(False) | parsed.isna()
    for line, raw in zip(frame.loc[bad_time, _LINE], frame.loc[bad_time, _RAW], strict=True):
        quarantine(int(line), raw, "observed_at", "observed_at is not RFC 3339 with an offset")
    frame = frame[~bad_time].assign(observed_at=parsed[~bad_time])
    quarantined = quarantine_frame(sorted(bad, key=lambda r: int(r["line"])))
    return Loaded(schemas.conform(frame, schemas.DEPLOYMENT_CONFIGS), quarantined, path)
