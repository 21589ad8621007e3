"""Fill the ``result`` column of docs/RELIABILITY.md from a pytest run.

Every table row names its tests as backticked ``tests/...py::test_name`` references (a following ``::other``
means the same file; ``[param]`` and ``*`` select parametrized cases). This script runs pytest on every referenced
file with ``--junitxml``, then writes for each row: ``pass``, ``xfail (known gap)``, ``FAIL``, ``skipped: reason``
or ``not run`` (a reference that matched no test). Rows whose test cell names no test keep their text and get
``not covered yet``. Usage::

    .venv/bin/python scripts/reliability_results.py            # run the tests, rewrite the file
    .venv/bin/python scripts/reliability_results.py --xml F    # reuse a junit XML from an earlier run
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "RELIABILITY.md"
REF = re.compile(r"`([^`]+)`")
HEADER_OLD = "| case | input or fault | behaviour | test |"
HEADER_NEW = "| case | input or fault | behaviour | test | result |"


def refs_of(cell: str) -> list[str]:
    """``tests/a.py::t1``, ``::t2``, ``[p]``, ``fuzz/fuzz_x.py`` -> node-id patterns (``*`` is a wildcard)."""
    out: list[str] = []
    current = ""
    for token in REF.findall(cell):
        token = token.strip()
        if token.startswith("tests/") and ".py" in token:
            current = token.split("::", 1)[0]
            out.append(token if "::" in token else token + "::*")
        elif token.startswith("::") and current:
            out.append(current + token)
        elif token.startswith("[") and out:
            out.append(out[-1].split("[", 1)[0] + token)
        elif token.startswith("fuzz/fuzz_") and token.endswith(".py"):
            name = token.removeprefix("fuzz/fuzz_").removesuffix(".py")
            smoke = "tests/hostile/test_fuzz_smoke.py::"
            out += [f"{smoke}test_atheris_short_run[{name}]", f"{smoke}test_corpus_replays_cleanly[{name}]"]
    return out


def _matches(pattern: str, results: dict[str, tuple[str, str]]) -> list[tuple[str, str]]:
    rx = re.compile(re.escape(pattern).replace(r"\*", ".*") + (r"(\[.*\])?$" if "[" not in pattern else "$"))
    return [v for k, v in results.items() if rx.match(k)]


def results_from_xml(path: Path) -> dict[str, tuple[str, str]]:
    """node id -> (outcome, message)."""
    res: dict[str, tuple[str, str]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        classname = case.get("classname", "")
        name = case.get("name", "")
        file = classname.replace(".", "/") + ".py"
        node = f"{file}::{name}"
        outcome, msg = "pass", ""
        for child in case:
            if child.tag == "skipped":
                kind = child.get("type", "")
                msg = child.get("message", "")
                outcome = "xfail" if "xfail" in kind or "xfail" in msg.lower() else "skip"
            elif child.tag in ("failure", "error"):
                outcome, msg = "fail", child.get("message", "")[:80]
        res[node] = (outcome, msg)
    return res


def verdict(patterns: list[str], results: dict[str, tuple[str, str]]) -> str:
    if not patterns:
        return "not covered yet"
    outcomes: list[tuple[str, str]] = []
    for pat in patterns:
        matched = _matches(pat, results)
        if "*" in pat and any(o == "pass" for o, _ in matched):
            # a whole file or a family of tests: a known gap elsewhere in it does not make this row a gap
            matched = [(o, m) for o, m in matched if o != "xfail"]
        outcomes.extend(matched or [("missing", pat)])
    kinds = {o for o, _ in outcomes}
    if "fail" in kinds:
        return "FAIL"
    if "missing" in kinds and kinds == {"missing"}:
        return "not run"
    if "xfail" in kinds:
        return "xfail (known gap)"
    if "skip" in kinds and "pass" not in kinds:
        reason = next(m for o, m in outcomes if o == "skip")
        return f"skipped here: {reason[:60]}"
    return "pass"


def rewrite(text: str, results: dict[str, tuple[str, str]]) -> str:
    lines = text.splitlines()
    out: list[str] = []
    in_table = False
    for line in lines:
        if line.strip() == HEADER_OLD:
            out.append(HEADER_NEW)
            in_table = True
            continue
        if in_table and line.startswith("|---"):
            out.append("|---|---|---|---|---|")
            continue
        if in_table and line.startswith("| "):
            cells = line.strip().strip("|").split(" | ")
            if len(cells) == 4:
                out.append(line.rstrip() + f" {verdict(refs_of(cells[3]), results)} |")
                continue
            if len(cells) == 5:  # already has a result: refresh it
                cells[4] = verdict(refs_of(cells[3]), results)
                out.append("| " + " | ".join(cells) + " |")
                continue
        if in_table and not line.startswith("|"):
            in_table = False
        out.append(line)
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--xml", type=Path, help="junit XML of an earlier run (skip running pytest)")
    ap.add_argument("--check", action="store_true", help="print the new text instead of writing it")
    args = ap.parse_args()
    text = DOC.read_text()
    files = sorted(
        {r.split("::", 1)[0] for cell in REF.findall(text) for r in [cell] if r.startswith("tests/")}
    )
    files = [f for f in files if (ROOT / f).exists()]
    xml = args.xml
    if xml is None:
        xml = Path(tempfile.gettempdir()) / "shoal-reliability-junit.xml"
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *files],
            cwd=ROOT,
            check=False,
        )
    results = results_from_xml(xml)
    new = rewrite(text, results)
    if args.check:
        sys.stdout.write(new)
    else:
        DOC.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
