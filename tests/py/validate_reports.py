#!/usr/bin/env python3
"""Third-party validation of gguf-gate's reports (used by tests/reports.rs).

    validate_reports.py sarif FILE SCHEMA   validate SARIF against the official OASIS schema
    validate_reports.py junit FILE          parse JUnit XML with junitparser; print counts as JSON
"""
import json
import sys


def sarif(path, schema_path):
    import jsonschema
    with open(schema_path) as f:
        schema = json.load(f)
    with open(path) as f:
        doc = json.load(f)
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    for e in errors[:20]:
        print(f"{'/'.join(map(str, e.path))}: {e.message}", file=sys.stderr)
    print(json.dumps({"valid": not errors, "errors": len(errors), "results": len(doc["runs"][0]["results"])}))


def junit(path):
    from junitparser import JUnitXml, Failure, Error
    xml = JUnitXml.fromfile(path)
    suites = []
    total = failures = 0
    for suite in xml:
        cases = list(suite)
        failed = [c for c in cases if any(isinstance(r, (Failure, Error)) for r in c.result)]
        suites.append({"name": suite.name, "tests": len(cases), "failures": len(failed),
                       "failed": [f"{c.classname}/{c.name}" for c in failed]})
        total += len(cases)
        failures += len(failed)
    print(json.dumps({"tests": total, "failures": failures, "suites": suites}))


if __name__ == "__main__":
    if sys.argv[1] == "sarif":
        sarif(sys.argv[2], sys.argv[3])
    else:
        junit(sys.argv[2])
