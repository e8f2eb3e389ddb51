#!/usr/bin/env python3
"""count.py LABEL RESULTS.json [REPORTS]: print 'LABEL: N passed, N failed,
N skipped' for the test cases in a kunit.py JSON file, followed by ', N
checker reports' when REPORTS (the count of checker reports in the kernel
log) is given. Exit 1 if no case ran, any failed, or REPORTS is not zero.
"""
import json
import sys


def walk(group, counts):
    for case in group.get("test_cases", []):
        status = case.get("status", "")
        key = {"PASS": "passed", "SKIP": "skipped"}.get(status, "failed")
        counts[key] += 1
    for sub in group.get("sub_groups", []):
        walk(sub, counts)


def main():
    label, path = sys.argv[1], sys.argv[2]
    reports = int(sys.argv[3]) if len(sys.argv) > 3 else None
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    with open(path, encoding="utf-8") as f:
        walk(json.load(f), counts)
    line = f"{label}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
    if reports is not None:
        line += f", {reports} checker reports"
    print(line)
    ok = counts["passed"] > 0 and counts["failed"] == 0 and not reports
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
