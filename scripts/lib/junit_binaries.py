"""Rows for the phase table (scripts/lib/phases.sh), one per test binary,
from cargo nextest's JUnit report: the binary's wall time (its first test's
start to its last test's end, as its tests overlap with other binaries'),
the sum of its tests' own times, and how many passed of how many ran.

    python3 scripts/lib/junit_binaries.py target/nextest/default/junit.xml
"""

import sys
import xml.etree.ElementTree as ET
from datetime import datetime


def main(path):
    root = ET.parse(path).getroot()
    rows = []
    for suite in root.iter("testsuite"):
        name = suite.get("name", "?").split("::")[-1]
        starts, ends, total, ran, failed = [], [], 0.0, 0, 0
        for case in suite.iter("testcase"):
            t = float(case.get("time") or 0)
            total += t
            ran += 1
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
            stamp = case.get("timestamp")
            if stamp:
                start = datetime.fromisoformat(stamp).timestamp()
                starts.append(start)
                ends.append(start + t)
        wall = (max(ends) - min(starts)) if starts else total
        result = f"{ran - failed}/{ran} passed, tests' own {total:.0f} s"
        rows.append((wall, f"  {name}", result))
    for wall, name, result in sorted(rows, reverse=True):
        print(f"{name}\t{wall:.1f}\t{result}")


if __name__ == "__main__":
    main(sys.argv[1])
