"""`policy test`: scenario files for policies, checked against the engine, with coverage.

A test file is YAML naming a policy and listing cases: an account, its
contact history, an instant, and what the decision must say (the format is
documented in docs/testing.md). The package follows the life of a file:

- `format`: reading a file (bounded YAML) and checking its shape into a
  `ScenarioFile` (`load_test_file`, `parse_test_file`, `TestFileError`);
- `binding`: checking it against the policy it names (action, stage, segment
  and field names, rule ids and lines), so a typo is an error that names the
  file, the case and the key, never a vacuous pass (`check_against_policy`);
- `running`: deciding each case with the compiled engine (`load_policy`),
  the one services embed, and comparing (`Runner`, `compare`, `failure_text`);
- `coverage`: with coverage on, each case is decided by the same compiled
  evaluator built with tracing, which records which rules decided something
  and which outcome each condition and operand of every `and`/`or` had.
  Coverage items are syntax-tree nodes, not lines, so reformatting a policy
  never changes its percentage (`PolicyCoverage`);
- `junit`: JUnit XML of the results (`junit_xml`).

The names below are the package's public API (what the CLI and embedders
import as `from policydsl.testing import ...`).
"""

from __future__ import annotations

from .binding import check_against_policy
from .coverage import CATEGORIES, CoverageItem, CoverageRow, PolicyCoverage
from .format import (
    KINDS,
    MAX_TEST_FILE_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_INT_CHARS,
    MAX_YAML_NODES,
    TEST_SUFFIXES,
    BlockedSpec,
    Case,
    Expect,
    ReasonSpec,
    RuleRef,
    ScenarioFile,
    TestFileError,
    find_test_files,
    is_test_file,
    load_test_file,
    parse_instant,
    parse_test_file,
)
from .junit import junit_xml
from .running import (
    CaseResult,
    FileResult,
    Mismatch,
    Runner,
    account_values,
    compare,
    contacts,
    describe_reason,
    failure_text,
)

__all__ = [
    "CATEGORIES",
    "KINDS",
    "MAX_TEST_FILE_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_INT_CHARS",
    "MAX_YAML_NODES",
    "TEST_SUFFIXES",
    "BlockedSpec",
    "Case",
    "CaseResult",
    "CoverageItem",
    "CoverageRow",
    "Expect",
    "FileResult",
    "Mismatch",
    "PolicyCoverage",
    "ReasonSpec",
    "RuleRef",
    "Runner",
    "ScenarioFile",
    "TestFileError",
    "account_values",
    "check_against_policy",
    "compare",
    "contacts",
    "describe_reason",
    "failure_text",
    "find_test_files",
    "is_test_file",
    "junit_xml",
    "load_test_file",
    "parse_instant",
    "parse_test_file",
]
