"""`make run` and the CLI say which address and which environment they use."""

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.test_deploy import free_port

ROOT = Path(__file__).resolve().parent.parent


def _demo(port: int, database: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SHOPIFY_", "DATABASE_URL", "REDIS_URL", "ADMIN_API_KEY", "HOST"))}
    env.update(PORT=str(port), DATABASE_URL=f"sqlite:///{database}", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "sandbox.demo"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_second_make_run_on_a_taken_port_stops_first_and_leaves_the_demo_key_working(tmp_path):
    port, database = free_port(), tmp_path / "demo.db"
    first = _demo(port, database)
    try:
        key, deadline = None, time.monotonic() + 30
        while key is None and time.monotonic() < deadline:
            line = first.stdout.readline()
            if "API key (shown once):" in line:
                key = line.rsplit(" ", 1)[1].strip()
        assert key, "the demo printed no key"
        headers = {"Authorization": f"Bearer {key}"}
        for _ in range(100):
            try:
                assert requests.get(f"http://127.0.0.1:{port}/api/v1/integrations", headers=headers,
                                    timeout=2).status_code == 200
                break
            except requests.ConnectionError:
                time.sleep(0.1)

        second = _demo(port, database)
        output, _ = second.communicate(timeout=30)
        assert second.returncode != 0
        # The running demo's key still works: the second run stopped before the database.
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/integrations", headers=headers,
                            timeout=5).status_code == 200
        assert f"HOST=127.0.0.1 PORT={port}" in output and "Nothing was changed" in output
        assert "API key" not in output
    finally:
        first.terminate()
        first.wait(timeout=10)


def test_make_run_refuses_a_port_it_cannot_serve_on(tmp_path):
    demo = _demo(0, tmp_path / "demo.db")  # PORT=0 is no port to serve the curl lines on
    output, _ = demo.communicate(timeout=30)
    assert demo.returncode != 0 and "PORT must be a port number" in output
    assert not (tmp_path / "demo.db").exists()


def test_providers_list_says_it_reads_this_process_environment(make_app):
    result = make_app(SHOPIFY_ADMIN_ACCESS_TOKENS=None, SANDBOX=None).test_cli_runner().invoke(args=["providers", "list"])
    assert result.exit_code == 0
    assert "this process's environment" in result.stderr and "SANDBOX=false" in result.stderr
    assert "`make run`" in result.stderr
    shopify = next(line for line in result.stdout.splitlines() if line.startswith("shopify\t"))
    assert "not configured" in shopify
    assert "environment" not in result.stdout  # stdout stays one tab-separated line per provider


def test_providers_list_in_sandbox_mode_says_the_providers_are_the_emulators(make_app):
    result = make_app(SANDBOX="true").test_cli_runner().invoke(args=["providers", "list"])
    assert "SANDBOX=true: the providers are the local emulators" in result.stderr
    assert any(line.startswith("shopify\t") and line.endswith("\tconfigured") for line in result.stdout.splitlines())
