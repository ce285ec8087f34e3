"""Great Expectations suites and their results as our own `ValidationReport`.

The only module that imports great_expectations (lazily, inside `run_suite`, so
importing the report types stays cheap). A suite is a list of `Check`s: plain
data naming a GX 1.x expectation class and its arguments. Checks that need the
kitchen (replays, consistency across rows) are computed in pandas by
`taskplan.data.validate` as derived columns, and GX checks those columns like
any other, so every failure lands in the same report and the same data docs.

    report = run_suite("trajectories", frame, checks, docs_dir=Path("outputs/validate/data_docs"))
    report.passed, report.first_failure, report.lines()

Checks run in list order and the report keeps that order: the first failed
check is the most basic one (empty data before missing columns before types
before nulls before semantics), which is what the one-line DatasetError names.
Column checks whose column is missing are left out of the suite; the schema
check reports the missing column instead of twenty follow-up errors.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from taskplan.env import quiet_env

log = logging.getLogger(__name__)

ID_COLUMNS = ("file", "line", "split", "task", "seed", "eps", "step")   # what an example row shows first
_TABLE_LEVEL = ("ExpectTableRowCountToBeBetween", "ExpectTableColumnsToMatchSet")


@dataclass(frozen=True, slots=True)
class Check:
    name: str                       # stable id, e.g. "expert_action_valid"
    description: str                # one human clause, e.g. "the expert action is one of the valid actions"
    expectation: str                # GX 1.x class in great_expectations.expectations
    kwargs: dict = field(default_factory=dict)
    show: tuple[str, ...] = ()      # columns printed in a failing example
    derived: bool = False           # a derived True/False column: the example shows `show`, not the flag

    @property
    def columns(self) -> tuple[str, ...]:
        cols = [self.kwargs["column"]] if "column" in self.kwargs else list(self.kwargs.get("column_list", ()))
        return tuple(cols)


@dataclass(frozen=True, slots=True)
class CheckResult:
    suite: str
    name: str
    description: str
    expectation: str                # GX expectation type, e.g. expect_column_values_to_be_in_set
    passed: bool
    unexpected: int | None = None   # failing rows (None for table-level checks)
    total: int | None = None
    example: str | None = None      # one failing row, or what the table-level check observed

    def line(self) -> str:
        if self.passed:
            return f"{self.suite}/{self.name}: ok"
        count = f"{self.unexpected} of {self.total} rows fail" if self.unexpected is not None else "fails"
        return (f"{self.suite}/{self.name}: {self.description} [{self.expectation}]: {count}"
                + (f"; {self.example}" if self.example else ""))


@dataclass(frozen=True, slots=True)
class ValidationReport:
    suite: str
    rows: int
    results: tuple[CheckResult, ...] = ()
    data_docs: str | None = None    # index.html of the GX data docs, when built

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def first_failure(self) -> str | None:
        return self.failed[0].line() if self.failed else None

    def lines(self) -> list[str]:
        """One line per failed check (empty when the data passed)."""
        return [r.line() for r in self.failed]

    def to_dict(self) -> dict:
        return {"suite": self.suite, "rows": self.rows, "passed": self.passed, "checks": len(self.results),
                "failed": len(self.failed), "first_failure": self.first_failure, "data_docs": self.data_docs,
                "results": [asdict(r) for r in self.results]}


def run_suite(suite: str, frame: Any, checks: list[Check], docs_dir: Path | None = None) -> ValidationReport:
    """Validate a pandas DataFrame with GX (ephemeral context); data docs HTML under `docs_dir` when given."""
    quiet_env()
    gx_log = logging.getLogger("great_expectations")
    if gx_log.level == logging.NOTSET:   # its INFO chatter (docs decorators, datasource loading) is noise here
        gx_log.setLevel(logging.WARNING)
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    present = set(frame.columns)
    active = [c for c in checks if set(c.columns) <= present]
    # in-memory stores and no default docs site (gx's default one lands in a fresh /tmp dir every run)
    context = gx.get_context(mode="ephemeral", project_config=DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False)))
    if docs_dir is not None:
        context.add_data_docs_site("local", {
            "class_name": "SiteBuilder", "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(Path(docs_dir).resolve())}})
    batch = (context.data_sources.add_pandas("taskplan").add_dataframe_asset(suite)
             .add_batch_definition_whole_dataframe("all"))
    # all expectations at construction: add_expectation one by one re-serializes the whole suite each time
    gx_suite = context.suites.add(gx.ExpectationSuite(name=suite, expectations=[
        getattr(gxe, c.expectation)(**c.kwargs, meta={"check": c.name}) for c in active]))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=suite, data=batch, suite=gx_suite))
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
    if docs_dir is not None:
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=suite, validation_definitions=[definition], result_format=result_format,
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")]))
        outcome = checkpoint.run(batch_parameters={"dataframe": frame})
        results = [r for run in outcome.run_results.values() for r in run.results]
    else:
        results = definition.run(batch_parameters={"dataframe": frame}, result_format=result_format).results
    by_name = {r.expectation_config.meta["check"]: r for r in results}
    report = ValidationReport(
        suite=suite, rows=len(frame),
        results=tuple(_result(suite, c, by_name[c.name], frame) for c in active),
        data_docs=str(Path(docs_dir) / "index.html") if docs_dir is not None else None)
    log.info("%s: %d of %d checks passed on %d rows", suite, len(report.results) - len(report.failed),
             len(report.results), len(frame))
    return report


def _result(suite: str, check: Check, res: Any, frame: Any) -> CheckResult:
    head = (suite, check.name, check.description, _snake(check.expectation))
    info = res.exception_info or {}
    if info.get("raised_exception"):
        msg = str(info.get("exception_message") or "error").splitlines()[0][:160]
        return CheckResult(*head, False, example=f"could not evaluate: {msg}")
    r = res.result or {}
    if res.success:
        return CheckResult(*head, True, r.get("unexpected_count"), r.get("element_count"))
    if check.expectation in _TABLE_LEVEL:
        return CheckResult(*head, False, example=_table_example(check, r))
    index = r.get("partial_unexpected_index_list") or []
    example = _row_example(frame, index[0], check) if index else None
    if example is None and r.get("partial_unexpected_list"):
        example = f"value {_short(r['partial_unexpected_list'][0])}"
    return CheckResult(*head, False, r.get("unexpected_count"), r.get("element_count"), example)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _table_example(check: Check, r: dict) -> str:
    observed = r.get("observed_value")
    if check.expectation == "ExpectTableColumnsToMatchSet":
        mismatched = (r.get("details") or {}).get("mismatched") or {}
        parts = [f"missing {sorted(mismatched['missing'])}" if mismatched.get("missing") else "",
                 f"unexpected {sorted(mismatched['unexpected'])}" if mismatched.get("unexpected") else ""]
        return ", ".join(p for p in parts if p) or f"observed {observed}"
    return f"observed {observed}"


def _row_example(frame: Any, index: Any, check: Check) -> str | None:
    if isinstance(index, dict):   # GX may report {"index": i} or {column: value} pairs
        index = index.get("index", next(iter(index.values()), None))
    try:
        row = frame.loc[index]
    except (KeyError, TypeError):
        return None
    own = () if check.derived else check.columns
    shown = [c for c in ID_COLUMNS if c in frame.columns] + [c for c in (*own, *check.show)
                                                               if c in frame.columns and c not in ID_COLUMNS]
    seen: list[str] = []
    for c in shown:
        if c not in seen:
            seen.append(c)
    return "e.g. " + " ".join(f"{c}={_short(row[c])}" for c in seen)


def _short(value: Any, width: int = 70) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
