"""Runs the suites with Great Expectations (GX Core 1.x) and summarises what failed.

One GX suite per batch (named like the batch), validated on a pandas batch of an ephemeral
context; each expectation carries the Dagster check it feeds in its ``meta``. The results of
a run wait in its ``Session`` until they are rendered as Data Docs (static HTML) under
``data_docs_dir``; where that happens, and when, is ``runtime.GxRuntime``'s business. The
site shows the latest run; the history of every run is in the data_quality_report table.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from licensing_pipeline.file_modes import own_folder, private_umask
from licensing_pipeline.quality.batches import Batch
from licensing_pipeline.quality.gx_import import import_gx
from licensing_pipeline.quality.suites import CheckSpec, ExpectationSpec, to_gx_expectation

SITE = "licensing"
DATASOURCE = "licensing"
SAMPLE_ROWS = 10  # unexpected rows kept per expectation
EXAMPLES = 3  # unexpected rows named in a failure message
# A suite is validated with BOOLEAN_ONLY (pass or fail: a third of the cost of SUMMARY);
# only a failed expectation is validated again with SUMMARY, for its counts, values and
# rows, and that result replaces the short one in what the Data Docs show.
RESULT_FORMAT = {"result_format": "BOOLEAN_ONLY"}
DETAIL_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_ROWS}
_COLUMN_LIST_EXPECTATIONS = (
    "expect_table_columns_to_match_ordered_list",
    "expect_table_columns_to_match_set",
)
MAX_TEXT = 80  # characters of a cell shown in a sample

log = logging.getLogger(__name__)


# --- outcomes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectationOutcome:
    spec: ExpectationSpec
    success: bool
    observed: str = ""
    unexpected_count: int | None = None
    element_count: int | None = None
    sample: pd.DataFrame = field(default_factory=pd.DataFrame)
    message: str = ""  # the failure in words (empty when it passed)


@dataclass(frozen=True)
class CheckOutcome:
    """One Dagster check: its expectations' outcomes and where to read them."""

    spec: CheckSpec
    expectations: tuple[ExpectationOutcome, ...]
    facts: Mapping[str, Any] = field(default_factory=dict)
    data_docs: Mapping[str, str] = field(default_factory=dict)  # batch -> page URL
    data_docs_index: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(e.success for e in self.expectations)

    @property
    def outcome(self) -> str:
        """pass | warn | fail, as data_quality_report records it."""
        if self.passed:
            return "pass"
        return "fail" if self.spec.blocking else "warn"

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(e for e in self.expectations if not e.success)

    @property
    def unexpected_count(self) -> int:
        return sum(e.unexpected_count or 0 for e in self.failed)

    def description(self) -> str:
        if self.passed:
            return f"{len(self.expectations)} expectation(s) met. {self.spec.asserts}"
        messages = list(dict.fromkeys(e.message for e in self.failed))
        return f"{self.spec.asset}: " + "; ".join(messages)


# --- failure messages ------------------------------------------------------------------------


class _Facts(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _examples(spec: ExpectationSpec, sample: pd.DataFrame, batch: Batch, count: int) -> str:
    if sample.empty:
        return ""
    column = spec.kwargs.get("column")
    names = []
    for row in sample.head(EXAMPLES).to_dict("records"):
        name = batch.label(row)
        shown_column = batch.show_values and isinstance(column, str) and column in row
        if shown_column and name != str(row[column]):
            value = row[str(column)]
            shown = f"{value:.1f}" if isinstance(value, float) else _text(value, 40)
            name = f"{name}: {column}={shown}"
        names.append(name)
    more = f" and {count - len(names)} more" if count > len(names) else ""
    return ", ".join(names) + more


def _message(
    spec: ExpectationSpec,
    batch: Batch | None,
    observed: str,
    count: int | None,
    sample: pd.DataFrame,
    error: str | None,
    parameters: Mapping[str, Any] | None = None,
) -> str:
    if error:
        return f"{spec.describe()} could not be evaluated: {error}"
    examples = _examples(spec, sample, batch, count or 0) if batch is not None else ""
    facts = _Facts(
        {k: f"{v:g}" for k, v in (parameters or {}).items() if isinstance(v, int | float)}
    )
    facts.update(batch.facts if batch is not None else {})
    facts.update(
        count=count if count is not None else "some",
        examples=examples or "see the Data Docs",
        observed=observed,
        column=spec.kwargs.get("column", ""),
    )
    if spec.problem:
        try:
            return spec.problem.format_map(facts)
        except (ValueError, IndexError, AttributeError):  # a template with a bad field
            return f"{spec.problem} ({count} unexpected)"
    detail = f": {examples}" if examples else f" (observed {observed})" if observed else ""
    return f"{spec.describe()} failed{detail}"


def _observed(result: Mapping[str, Any]) -> str:
    if "observed_value" in result:
        return _text(result["observed_value"], 200)
    if "unexpected_count" in result:
        return f"{result.get('unexpected_count')} of {result.get('element_count')} unexpected"
    return ""


def _field(info: Any, name: str) -> Any:
    return info.get(name) if isinstance(info, dict) else getattr(info, name, None)


def _error(exception_info: Any) -> str | None:
    """The message of an exception GX caught while computing a metric, if any (a dict of
    exception infos per metric, or one exception info)."""
    if not exception_info:
        return None
    infos = [exception_info]
    if isinstance(exception_info, dict) and "raised_exception" not in exception_info:
        infos = list(exception_info.values())
    for info in infos:
        if _field(info, "raised_exception"):
            return str(_field(info, "exception_message") or "an exception")
    return None


def _sample(batch: Batch, result: Mapping[str, Any]) -> pd.DataFrame:
    index = result.get("partial_unexpected_index_list") or []
    index = [i for i in index if not isinstance(i, dict)]
    if not index:
        return pd.DataFrame()
    frame = batch.frame.loc[[i for i in index if i in batch.frame.index]].head(SAMPLE_ROWS)
    return frame.reset_index(drop=True)


def _outcome(
    spec: ExpectationSpec,
    batch: Batch | None,
    raw: Mapping[str, Any],
    parameters: Mapping[str, Any] | None = None,
) -> ExpectationOutcome:
    """``raw``: what ``validate`` keeps of a GX result (success, result, error)."""
    body: Mapping[str, Any] = raw.get("result") or {}
    error = raw.get("error")
    success = bool(raw.get("success")) and error is None
    sample = _sample(batch, body) if batch is not None and not success else pd.DataFrame()
    observed = _observed(body)
    count = body.get("unexpected_count")
    return ExpectationOutcome(
        spec=spec,
        success=success,
        observed=observed,
        unexpected_count=int(count) if count is not None else None,
        element_count=body.get("element_count"),
        sample=sample,
        message=""
        if success
        else _message(spec, batch, observed, count, sample, error, parameters),
    )


def _not_evaluated(spec: ExpectationSpec, reason: str) -> ExpectationOutcome:
    return ExpectationOutcome(
        spec=spec, success=False, message=f"{spec.describe()} could not be evaluated: {reason}"
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while GX works: it allocates heavily, and every full
    collection walks the whole process (the Dagster definitions, the dbt manifest), which
    costs more than the validation itself. Reference counting still frees memory."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- the GX context of a run -------------------------------------------------------------------


def _context(docs_dir: Path) -> Any:
    gx = import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.variables.data_docs_sites = {
        SITE: {
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {
                "class_name": "DefaultSiteIndexBuilder",
                "show_cta_footer": False,
            },
            "show_how_to_buttons": False,
        }
    }
    return context


Rendered = tuple[Any, Any, Any]  # (validation result key, validation result, suite)


class Session:
    """One run's GX context, and the results its Data Docs still have to show (the steps of
    a run that share a process share it)."""

    def __init__(self, docs_dir: Path, run_id: str, run_name: str) -> None:
        import_gx()  # first: it decides what GX's import leaves out
        from great_expectations.core.run_identifier import RunIdentifier

        self.run_id = run_id
        self.docs_dir = docs_dir
        self.context: Any = _context(docs_dir)
        self.source = self.context.data_sources.add_pandas(DATASOURCE)
        self.run_identifier = RunIdentifier(
            run_name=run_name, run_time=datetime.now(UTC).replace(microsecond=0)
        )
        self.batch_definitions: dict[str, Any] = {}
        self.pending: list[Rendered] = []  # validated, not rendered yet
        self.rendered: list[Rendered] = []  # on the site (the index lists them all)

    def batch_definition(self, batch: str) -> Any:
        """One GX data asset per Dagster asset (``contracts.quarantine`` -> ``contracts``)."""
        asset = batch.split(".", 1)[0]
        if asset not in self.batch_definitions:
            data_asset = self.source.add_dataframe_asset(asset)
            self.batch_definitions[asset] = data_asset.add_batch_definition_whole_dataframe("whole")
        return self.batch_definitions[asset]


# --- validation ----------------------------------------------------------------------------------


def _meta(index: int, note: str) -> dict[str, Any]:
    return {"index": index, "notes": {"format": "markdown", "content": [note]}}


def _suite_notes(checks: Iterable[CheckSpec], batch: str) -> str:
    lines = [f"Batch `{batch}`. Checks fed by this suite:"]
    for check in checks:
        kind = "blocking" if check.blocking else "warns"
        lines.append(f"- **{check.asset}:{check.name}** ({kind}): {check.asserts}")
    return "\n".join(lines)


def validate(session: Session, validation: Validation) -> Validated:
    """Validate one batch: (what each expectation gave, in the order of its specs; the URL
    its Data Docs page will have). The result waits in the session for rendering.

    The suite is validated on the batch directly: no validation definition or result is
    stored in the context (that bookkeeping costs as much as validating).
    """
    name, frame, parameters = validation.name, validation.frame, validation.parameters
    specs, notes = validation.specs, validation.notes
    suite_notes = validation.suite_notes
    gx = import_gx()
    by_index = dict(enumerate(specs))
    expectations = [to_gx_expectation(spec, _meta(i, notes[i])) for i, spec in by_index.items()]
    # the constructor, not add_expectation: that one looks the suite up in a context each time
    suite = gx.ExpectationSuite(name=name, expectations=expectations, notes=suite_notes)
    gx_batch = session.batch_definition(name).get_batch(batch_parameters={"dataframe": frame})
    result = gx_batch.validate(
        suite, result_format=RESULT_FORMAT, expectation_parameters=dict(parameters)
    )
    result.meta["run_id"] = session.run_identifier
    result.meta["validation_time"] = session.run_identifier.run_time
    found: dict[int, dict[str, Any]] = {}
    for position, item in enumerate(result.results):  # matched by meta.index, not by order
        index = (item.expectation_config.meta or {}).get("index")
        if index not in by_index or index in found:
            continue
        error = _error(item.exception_info)
        if not item.success and error is None:
            detail = gx_batch.validate(
                to_gx_expectation(by_index[index], item.expectation_config.meta or {}),
                result_format=DETAIL_FORMAT,
                expectation_parameters=dict(parameters),
            )
            detail.expectation_config.meta = item.expectation_config.meta
            result.results[position] = item = detail
            error = _error(item.exception_info)
        elif item.expectation_config.type in _COLUMN_LIST_EXPECTATIONS:
            # the Data Docs lay a page out by the observed columns, which BOOLEAN_ONLY omits
            item.result = {**(item.result or {}), "observed_value": list(frame.columns)}
        found[index] = {
            "success": bool(item.success),
            "result": dict(item.result or {}),
            "error": error,
        }
    missing = {"success": False, "result": {}, "error": "no result from Great Expectations"}
    key = _result_key(session, name)
    session.pending.append((key, result, suite))
    return [found.get(i, missing) for i in by_index], _page_url(session.docs_dir, key)


@dataclass(frozen=True)
class Validation:
    """What validating one batch takes, wherever it runs (it pickles for the GX worker)."""

    name: str
    frame: pd.DataFrame
    specs: list[ExpectationSpec]
    notes: list[str]  # the check each expectation feeds, shown in the Data Docs
    suite_notes: str
    parameters: dict[str, Any]


Validated = tuple[list[dict[str, Any]], str]  # each expectation's result; the page's URL
Submit = Callable[[Validation], Callable[[], Validated]]  # start one; how to wait for it


def _validation(
    name: str,
    batch: Batch,
    specs: Sequence[ExpectationSpec],
    checks: Sequence[CheckSpec],
    parameters: Mapping[str, Any],
) -> Validation:
    notes = []
    for spec in specs:
        check = next(c for c in checks if c.name == spec.check)
        notes.append(f"{check.asset}:{check.name} ({'blocking' if check.blocking else 'warns'})")
    return Validation(
        name, batch.frame, list(specs), notes, _suite_notes(checks, name), dict(parameters)
    )


def _result_key(session: Session, suite: str) -> Any:
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    return ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(suite),
        run_id=session.run_identifier,
        batch_identifier=f"{DATASOURCE}-{suite}",
    )


def evaluate(
    checks: Sequence[CheckSpec],
    batches: Mapping[str, Callable[[], Batch]],
    parameters: Mapping[str, Any],
    *,
    docs_dir: Path,
    submit: Submit,
) -> list[CheckOutcome]:
    """Validate every batch the checks use (each built once, when first needed, while
    ``submit`` validates the one before).

    A batch that cannot be built fails its expectations with the reason, so a broken input
    never passes a check by accident."""
    outcomes: dict[tuple[str, int], ExpectationOutcome] = {}
    built: dict[str, Batch] = {}
    urls: dict[str, str] = {}
    started = time.perf_counter()
    waiting = []
    with gc_paused():
        for name in dict.fromkeys(b for c in checks for b in c.batches):
            specs = [
                (c, i, e) for c in checks for i, e in enumerate(c.expectations) if e.batch == name
            ]
            try:
                if name not in batches:
                    raise KeyError(f"no batch named {name!r}")
                batch = built[name] = batches[name]()
                expectations = [e for _, _, e in specs]
                checks_here = [c for c in checks if name in c.batches]
                validation = _validation(name, batch, expectations, checks_here, parameters)
                waiting.append((name, specs, submit(validation)))
            except Exception as exc:  # the check reports it; it must never pass silently
                _report_failure(name, specs, exc, outcomes)
        for name, specs, wait in waiting:
            try:
                raws, urls[name] = wait()
                results = [
                    _outcome(e, built[name], raw, parameters)
                    for (_, _, e), raw in zip(specs, raws, strict=True)
                ]
            except Exception as exc:
                _report_failure(name, specs, exc, outcomes)
                continue
            for (check, index, _), outcome in zip(specs, results, strict=True):
                outcomes[(check.name, index)] = outcome
    seconds = (time.perf_counter() - started) / max(len(checks), 1)
    index_url = (docs_dir.resolve() / "index.html").as_uri() if urls else None
    report = []
    for check in checks:
        facts: dict[str, Any] = {}
        for name in check.batches:
            if name in built:
                facts.update(built[name].facts)
        found = tuple(outcomes[(check.name, i)] for i in range(len(check.expectations)))
        report.append(
            CheckOutcome(
                spec=check,
                expectations=found,
                facts=facts,
                data_docs={b: urls[b] for b in check.batches if b in urls},
                data_docs_index=index_url,
                seconds=seconds,
            )
        )
    return report


def _report_failure(
    name: str,
    specs: Sequence[tuple[CheckSpec, int, ExpectationSpec]],
    exc: Exception,
    outcomes: dict[tuple[str, int], ExpectationOutcome],
) -> None:
    log.exception("data-quality batch %s failed", name)
    reason = f"{type(exc).__name__}: {exc}"
    for check, index, spec in specs:
        outcomes[(check.name, index)] = _not_evaluated(spec, reason)


# --- Data Docs -----------------------------------------------------------------------------------


def _page_url(docs_dir: Path, key: Any) -> str:
    """The file URL GX's filesystem site gives a validation result: one folder per part of
    the suite name, then run name, run time and batch (``page_url`` asks GX itself)."""
    parts = key.to_tuple()  # (*suite name parts, run name, run time, batch identifier)
    return (docs_dir.resolve() / "validations" / Path(*parts[:-1]) / f"{parts[-1]}.html").as_uri()


def page_url(docs_dir: Path, key: Any) -> str | None:
    """GX's own answer for a result's page (the tests compare it with ``_page_url``)."""
    for site in _context(docs_dir).get_docs_sites_urls(
        resource_identifier=key, site_names=[SITE], only_if_exists=False
    ):
        if site.get("site_name") == SITE and site.get("site_url"):
            return str(site["site_url"])
    return None


def _same(value: Any) -> Any:
    return value


SUITE_HASHES = ".suites.json"  # under expectations/: the suites the pages there show


def render(session: Session) -> None:
    """The pending results (and their suites, when changed) as HTML, and the index of the
    run: one build, in a context of its own, which holds the run's results for the index."""
    pending, session.pending = session.pending, []
    if not pending:
        return
    try:
        # The pages show tenants' rows: a private folder, private files, whatever the umask.
        with gc_paused(), private_umask():
            own_folder(session.docs_dir)
            _build_site(session, pending)
    except Exception:  # Data Docs are a convenience: never fail a check over them
        log.exception("building the Data Docs under %s failed", session.docs_dir)


def _build_site(session: Session, pending: list[Rendered]) -> None:
    gx = import_gx()
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    site = _context(session.docs_dir)
    # The site's results live in memory only for this build: keep them as objects instead
    # of a JSON round trip (a third of the build).
    results_store = site.validation_results_store
    results_store.serialize = _same
    results_store.deserialize = _same
    session.rendered += pending
    hashes_file = session.docs_dir / "expectations" / SUITE_HASHES
    try:
        known = json.loads(hashes_file.read_text())
    except (OSError, ValueError):
        known = {}
    changed = []
    for key, result, suite in session.rendered:
        definition = suite.to_json_dict()
        site.suites.add_or_update(gx.ExpectationSuite(**definition))
        site.validation_results_store.set(key, result)
        digest = hashlib.sha256(
            json.dumps(definition, sort_keys=True, default=str).encode()
        ).hexdigest()
        page = session.docs_dir / "expectations" / Path(*suite.name.split("."))
        if known.get(suite.name) != digest or not page.with_suffix(".html").is_file():
            changed.append(suite.name)
            known[suite.name] = digest
    keys = [key for key, _, _ in pending]
    suites = [ExpectationSuiteIdentifier(name) for name in dict.fromkeys(changed)]
    site.build_data_docs(site_names=[SITE], resource_identifiers=[*keys, *suites])
    hashes_file.parent.mkdir(parents=True, exist_ok=True)
    hashes_file.write_text(json.dumps(known, indent=1, sort_keys=True))
