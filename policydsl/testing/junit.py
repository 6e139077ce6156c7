"""JUnit XML for `policy test --junit`: one suite per test file, one test case per case."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from .binding import _resolved
from .coverage import PolicyCoverage
from .running import FileResult, failure_text

_XML_ILLEGAL = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _XML_ILLEGAL.sub("\ufffd", text)


def junit_xml(files: Sequence[FileResult], coverage: dict[str, PolicyCoverage] | None = None) -> str:
    """JUnit XML: one <testsuite> per test file, one <testcase> per case; a
    file that could not be used is a suite with one <error>."""
    suites = ET.Element("testsuites", name="policy test")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_time = 0.0
    for result in files:
        suite = ET.SubElement(suites, "testsuite", name=_xml_text(result.path))
        properties = ET.SubElement(suite, "properties")
        if result.policy_path:
            ET.SubElement(properties, "property", name="policy", value=_xml_text(result.policy_path))
            measured = (coverage or {}).get(_resolved(result.policy_path))
            if measured is not None:
                ET.SubElement(properties, "property", name="coverage", value=f"{measured.percent:.1f}")
        classname = _xml_text(Path(result.path).name)
        if result.error is not None:
            case = ET.SubElement(suite, "testcase", classname=classname, name="(load test file)", time="0.000")
            error = ET.SubElement(case, "error", message=_xml_text(result.error.splitlines()[0]),
                                  type="TestFileError")
            error.text = _xml_text(result.error)
            counts = {"tests": 1, "failures": 0, "errors": 1}
        else:
            for case_result in result.results:
                case = ET.SubElement(suite, "testcase", classname=classname, name=_xml_text(case_result.case.name),
                                     time=f"{case_result.seconds:.3f}")
                if not case_result.passed:
                    keys = ", ".join(dict.fromkeys(m.key for m in case_result.mismatches))
                    failure = ET.SubElement(case, "failure", message=_xml_text(f"mismatch in {keys}"),
                                            type="ExpectationMismatch")
                    failure.text = _xml_text(failure_text(case_result))
            counts = {"tests": len(result.results), "failures": len(result.failed), "errors": 0}
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("skipped", "0")
        suite.set("time", f"{result.seconds:.3f}")
        total_time += result.seconds
    for key, value in totals.items():
        suites.set(key, str(value))
    suites.set("time", f"{total_time:.3f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
