"""The Vercel deployment: what the builder would read from this repository, and the app's refusal
to start on a serverless platform without a shared database and Redis. The full build (install,
read-only start, /healthz and /readyz against PostgreSQL) is scripts/vercel_check.py, run by
.ci/run; these tests cover the rules it relies on, in seconds."""

from pathlib import Path

import pytest

from app import create_app
from config import ConfigError
from scripts import vercel_check

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = "postgresql://postgres@127.0.0.1:5432/anything"


def test_vercel_reads_requirements_txt_because_no_pyproject_or_pipfile_is_bundled():
    files = vercel_check.bundle_files()
    assert vercel_check.manifest(files) == "requirements.txt"
    assert "flask" in (ROOT / "requirements.txt").read_text().lower()


def test_a_pyproject_toml_would_win_over_requirements_txt_as_it_does_at_vercel():
    # The original bug: pytest's settings in pyproject.toml made it the (empty) manifest.
    assert vercel_check.manifest(["pyproject.toml", "requirements.txt", "wsgi.py"]) == "pyproject.toml"


def test_the_python_version_is_pinned_to_one_vercel_runs():
    files = vercel_check.bundle_files()
    assert ".python-version" in files
    assert vercel_check.python_version(ROOT, files) == (3, 12)


def test_the_bundle_holds_the_app_and_leaves_out_tests_benchmarks_docs_and_the_sandbox():
    files = vercel_check.bundle_files()
    for needed in ("wsgi.py", "config.py", "app/__init__.py", "requirements.txt", "migrations/env.py"):
        assert needed in files
    for left_out in ("tests/", "benchmarks/", "docs/", "sandbox/", "scripts/", ".ci/"):
        assert not [f for f in files if f.startswith(left_out)], left_out
    assert "pytest.ini" not in files and "Makefile" not in files


@pytest.mark.parametrize("pattern, path, excluded", [
    ("{tests,docs}/**", "tests/conftest.py", True),
    ("{tests,docs}/**", "docs/a/b.md", True),
    ("{tests,docs}/**", "app/tests.py", False),
    ("**/__pycache__/**", "app/__pycache__/x.pyc", True),
    ("**/__pycache__/**", "__pycache__/x.pyc", True),
    ("*.txt", "requirements.txt", True),
    ("*.txt", "docs/a.txt", False),
])
def test_exclusion_globs_follow_minimatch(pattern, path, excluded):
    assert vercel_check._excluded(path, [pattern]) is excluded


@pytest.mark.parametrize("env", [
    {},                                                            # nothing set: the SQLite default
    {"DATABASE_URL": "sqlite:////tmp/switchboard.db"},              # /tmp is per instance
])
def test_on_vercel_without_a_postgresql_url_start_up_fails_naming_database_url(env):
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        create_app({"VERCEL": "1", "REDIS_URL": "redis://127.0.0.1:6379/5", **env})


def test_on_vercel_without_redis_start_up_fails_naming_redis_url():
    with pytest.raises(ConfigError, match="REDIS_URL"):
        create_app({"VERCEL": "1", "DATABASE_URL": POSTGRES})


def test_outside_vercel_the_sqlite_default_still_starts(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'nested' / 'dir' / 'x.db'}"})
    assert app.config["SERVERLESS"] is False
    assert (tmp_path / "nested" / "dir").is_dir()  # the file's own directory, not instance/
