"""Code, configs and tests say what and why as things are now; which change came from which issue lives in
git. A reference to a tracker's issue number in a comment goes stale and sends a reader to a tracker they may not have."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("genpo", "tests", "benchmarks", "scripts")
SUFFIXES = {".py", ".gin", ".toml", ".md", ".txt", ".cfg"}
# "issue" followed by a number, with or without "#" and spaces
ISSUE_NUMBER = re.compile(r"\bissue\s*#?\s*" + r"\d+", re.IGNORECASE)


def history_references() -> list[str]:
    found = []
    for top in CHECKED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix not in SUFFIXES or not path.is_file():
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if ISSUE_NUMBER.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_no_issue_numbers_in_code_configs_or_tests():
    assert history_references() == []


def test_the_check_finds_what_it_looks_for():
    number = 12  # built at run time, so this file's own text holds no match
    assert ISSUE_NUMBER.search(f"# chosen on HalfCheetah (issue {number})")
    assert ISSUE_NUMBER.search(f"see Issue #{number}")
    assert not ISSUE_NUMBER.search("a tissue of 12 layers")
