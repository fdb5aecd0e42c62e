"""A fresh machine without the Debian packages: the suite skips, naming what to install.

The run below hides libportaudio2, jackd2 and chromium (``tests/fresh_machine``'s
``sitecustomize`` makes ``sounddevice`` and ``jack`` fail to import as they do
without their libraries; ``conftest.installed_program`` hides the programs) and
runs every test that uses them.  Nothing may fail; every skip names the package.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent
ROOT = TESTS.parent
HIDDEN = ["libportaudio2", "jackd2", "chromium"]


def _apt_packages() -> list[str]:
    """The Debian packages CI (``.ci/run``) installs."""
    text = (ROOT / ".ci" / "run").read_text()
    line = re.search(r"apt-get install[^\n]*\\\n([^\n]*)", text).group(1)
    return [w for w in line.split() if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", w)]


def test_suite_skips_naming_the_package_without_debian_packages(tmp_path):
    env = dict(os.environ)
    env["AURALIZE_TEST_PRETEND_MISSING"] = " ".join(HIDDEN)
    env["AURALIZE_REQUIRE_AUDIO"] = "0"  # a user's machine, not CI
    env["PYTHONPATH"] = os.pathsep.join(
        [str(TESTS / "fresh_machine")] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "-m", "audio or not slow", "--basetemp", str(tmp_path / "t"),
         "tests/test_live.py", "tests/test_sonify_live.py", "tests/test_generate_live.py",
         "tests/test_devices.py", "tests/test_web_page.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert skips, out[-2000:]
    for line in skips:
        assert re.search(r"apt-get install \S+|install libportaudio2", line), line
    for package in HIDDEN:  # each hidden package was noticed (the simulation worked)
        assert any(package in line for line in skips), (package, skips)
    assert "passed" in out.splitlines()[-1]  # the tests that need none of them still ran


def test_readme_setup_names_every_debian_package_ci_installs():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set up, try, test", 1)[1].split("\n## ", 1)[0]
    packages = _apt_packages()
    assert {"libportaudio2", "jackd2", "chromium"} <= set(packages)
    for package in packages:
        assert f"`{package}`" in setup, package
    assert "apt-get install" in setup
