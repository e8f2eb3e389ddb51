#!/usr/bin/env python3
"""count.py LABEL RESULTS.json: print 'LABEL: N passed, N failed, N skipped'
for the test cases in a kunit.py JSON file (exit 1 if none ran or any failed).
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
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    with open(path, encoding="utf-8") as f:
        walk(json.load(f), counts)
    print(f"{label}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return 0 if counts["passed"] > 0 and counts["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
