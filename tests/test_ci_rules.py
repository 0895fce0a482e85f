"""The suite's own rules (tests/conftest.py), checked on small suites run in a subprocess."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")


def run_suite(tmp_path: Path, source: str, *, ci: bool) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a test module beside a copy of the suite's conftest."""
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_it.py").write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


SKIPPING = """
    import pytest

    def test_peer_missing():
        pytest.skip("test peer 'socat' is not installed")

    @pytest.mark.skipif(True, reason="no IPv6 loopback (::1) here")
    def test_over_ipv6():
        pass

    def test_plain():
        pass
"""


def test_under_ci_a_skip_fails_unless_allow_listed(tmp_path: Path) -> None:
    done = run_suite(tmp_path, SKIPPING, ci=True)
    assert done.returncode == 1, done.stdout
    last = done.stdout.strip().splitlines()[-1]
    assert "1 failed, 1 passed, 1 skipped" in last, done.stdout
    assert "FAILED test_it.py::test_peer_missing" in done.stdout
    assert "skips: 1 skipped" in done.stdout
    assert "allowed skip [ipv6] test_it.py::test_over_ipv6" in done.stdout


def test_outside_ci_skips_stay_skips_and_are_counted(tmp_path: Path) -> None:
    done = run_suite(tmp_path, SKIPPING, ci=False)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 2 skipped" in done.stdout
    assert "skips: 2 skipped (not under CI)" in done.stdout


def test_a_clean_run_under_ci_says_zero_skipped(tmp_path: Path) -> None:
    done = run_suite(tmp_path, "def test_one():\n    assert True\n", ci=True)
    assert done.returncode == 0, done.stdout
    assert "skips: 0 skipped (CI rules" in done.stdout


def test_under_ci_a_module_skipped_at_import_fails(tmp_path: Path) -> None:
    source = """
        import pytest
        pytest.importorskip("no_such_module_netshell_test")

        def test_never():
            pass
    """
    outside = run_suite(tmp_path, source, ci=False)
    assert "skips: 1 skipped (not under CI)" in outside.stdout, outside.stdout
    done = run_suite(tmp_path, source, ci=True)
    assert done.returncode not in (0, 5), done.stdout
    assert "ERROR test_it.py - skipped under CI" in done.stdout
    assert "no_such_module_netshell_test" in done.stdout


def test_needs_fds_raises_the_limit_for_the_test_and_puts_it_back(tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 600:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the 600 this check uses")
    # The inner run starts from a soft limit of 300, as on a machine with a low default.
    source = """
        import resource
        import pytest

        def test_a_before():
            assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 300

        @pytest.mark.needs_fds(500)
        def test_b_marked():
            assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 500

        def test_c_after():
            assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 300
    """
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_it.py").write_text(textwrap.dedent(source))
    script = (
        "import resource, sys, pytest\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, (300, {hard}))\n"
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', sys.argv[1]]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


# ---- the lint sees the project's folders only


PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_ruff_checks_the_project_folders_and_not_a_saved_session_in_the_checkout(
    tmp_path: Path,
) -> None:
    shutil.copy(PYPROJECT, tmp_path / "pyproject.toml")
    # What save("echo.py") writes at the prompt: the prompt's names, top-level await.
    (tmp_path / "echo.py").write_text(
        "# %%\nlistener = listen_tcp(8000, Factory.for_protocol(Echo))\n# %%\nawait sleep(1)\n"
    )
    for folder in ("netshell", "protocols", "scripts", "tests", "docs"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "clean.py").write_text('"""Fine."""\n')

    def ruff() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )

    done = ruff()
    assert done.returncode == 0, done.stdout + done.stderr
    for folder in ("netshell", "protocols", "scripts", "tests", "docs"):
        bad = tmp_path / folder / "sloppy.py"
        bad.write_text("import os\n")
        done = ruff()
        assert done.returncode == 1 and f"{folder}/sloppy.py" in done.stdout, (folder, done.stdout)
        bad.unlink()
