"""Check the relative links of README.md and docs/*.md: the file exists, and an #anchor names a heading.

Run from the checkout's root: `python scripts/check_links.py`; prints each broken link, exits 1 if any.
"""

import re
import sys
from pathlib import Path

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """Return GitHub's anchors for the headings of a markdown file (code blocks skipped)."""
    found, fence = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and (m := re.match(r"#+ (.*)", line)):
            found.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return found


def broken(path: Path) -> list[str]:
    """Return the links of one markdown file that point nowhere."""
    bad, fence = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            fence = not fence
        if fence:
            continue
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                bad.append(f"{path}:{number}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                bad.append(f"{path}:{number}: {target} (no such heading)")
    return bad


if __name__ == "__main__":
    problems = [p for f in [Path("README.md"), *sorted(Path("docs").glob("*.md"))] for p in broken(f)]
    print("\n".join(problems) or "all links resolve")
    sys.exit(1 if problems else 0)
