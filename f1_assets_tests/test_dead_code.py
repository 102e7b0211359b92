"""No dead code in `f1_assets`: vulture at 60% confidence reports nothing beyond the names frameworks read.

The names a framework or library reads (and our code does not) are listed, each with who reads it,
in `vulture_whitelist.py`; everything else vulture reports is dead code to remove.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHITELIST = Path(__file__).with_name("vulture_whitelist.py")
MIN_CONFIDENCE = "60"
# f1_assets/x.py:12: unused function 'name' (60% confidence)
_FINDING = re.compile(r"^(?P<where>\S+:\d+): unused \w+ '(?P<name>[^']+)' \(\d+% confidence")


def _vulture(*paths: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "vulture", *map(str, paths), "--min-confidence", MIN_CONFIDENCE],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    # 0: nothing found; 3: dead code found; anything else: vulture itself failed (a syntax error, no vulture)
    assert done.returncode in (0, 3), f"vulture failed ({done.returncode}): {done.stderr or done.stdout}"
    return done.stdout.splitlines()


def _whitelisted() -> list[str]:
    """The names of the whitelist's `read_by.<name>` lines; any other statement is an error."""
    module = ast.parse(WHITELIST.read_text())
    names = []
    for statement in module.body[1:] if ast.get_docstring(module) is not None else module.body:
        value = statement.value if isinstance(statement, ast.Expr) else None
        assert isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name), (
            f"{WHITELIST.name}:{statement.lineno}: expected a `read_by.<name>` line")
        assert value.value.id == "read_by", f"{WHITELIST.name}:{statement.lineno}: expected `read_by.`"
        names.append(value.attr)
    return names


def test_vulture_finds_no_dead_code_in_the_package():
    findings = _vulture(REPO / "f1_assets", WHITELIST)
    assert findings == [], (
        "dead code in f1_assets (remove it; only a name a framework reads goes in "
        f"{WHITELIST.name}, with who reads it):\n" + "\n".join(findings))


def test_every_whitelisted_name_is_one_vulture_reports_without_the_whitelist():
    reported = {match["name"] for line in _vulture(REPO / "f1_assets") if (match := _FINDING.match(line))}
    whitelisted = _whitelisted()
    assert whitelisted, f"{WHITELIST.name} lists no name: the parser read nothing"
    assert len(set(whitelisted)) == len(whitelisted), f"a name listed twice in {WHITELIST.name}"
    stale = [name for name in whitelisted if name not in reported]
    assert not stale, f"{WHITELIST.name} lists names vulture does not report in f1_assets (remove them): {stale}"
