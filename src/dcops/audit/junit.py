"""JUnit XML for CI gates: one test suite per host, one test case per host × check."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any


def junit_xml(doc: dict[str, Any]) -> bytes:
    suites = ET.Element("testsuites", name=f"dcops audit {doc['catalogue']['id']}")
    by_host: dict[str, list[dict[str, Any]]] = {}
    for f in doc["findings"]:
        by_host.setdefault(f["host"], []).append(f)
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for host, fs in by_host.items():
        suite = ET.SubElement(suites, "testsuite", name=host)
        n = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for f in fs:
            case = ET.SubElement(suite, "testcase", classname=host, name=f["check"])
            n["tests"] += 1
            evidence = "\n".join(f"{e['source']}: {e['value']}" for e in f["evidence"])
            if f["status"] == "fail":
                n["failures"] += 1
                el = ET.SubElement(case, "failure", message=f["message"], type=f["severity"])
                el.text = evidence
            elif f["status"] == "error":
                n["errors"] += 1
                el = ET.SubElement(case, "error", message=f["message"])
                el.text = evidence
            elif f["status"] in ("notapplicable", "waived", "manual"):
                n["skipped"] += 1
                ET.SubElement(case, "skipped", message=f"{f['status']}: {f['message']}")
            if evidence:
                ET.SubElement(case, "system-out").text = evidence
        for k, v in n.items():
            suite.set(k, str(v))
            total[k] += v
    for k, v in total.items():
        suites.set(k, str(v))
    out: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return out
