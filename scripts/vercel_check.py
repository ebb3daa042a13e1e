"""Build what Vercel would build from this repository, then start it read-only against PostgreSQL.

    python3 scripts/vercel_check.py --database-url postgresql://… [--redis-url redis://…]

Not ``vercel build`` itself: the CLI (npm ``vercel`` 64) does not install from the npm registry
this project can reach (a pinned dependency of it is missing there), and it builds only a project
linked to a Vercel account (``vercel pull``). This script follows the rules of the builder that
``vercel.json`` names, ``@vercel/python`` 25, as its source states them (docs/decisions.md):

1. Files: the repository's committed files (``git ls-files``), less those ``.vercelignore``
   matches (gitignore syntax, applied by git itself), less the builder's own exclusions and the
   build's ``config.excludeFiles``.
2. Dependencies: the first manifest among those files, in the builder's order: ``pyproject.toml``
   (its ``[project] dependencies``), ``Pipfile.lock``, ``Pipfile``, then the requirements files.
3. Python: ``.python-version``, else a pyproject's ``requires-python``, else 3.12; a version
   below 3.12 (the oldest Vercel runs) is raised to 3.12, as the builder does.
4. The dependencies are installed with that Python into a vendor directory (kept between runs
   under ~/.cache, keyed by the manifest's bytes and the interpreter; ``--no-cache`` installs
   afresh), the files copied beside it, and the copy made read-only: a read-only bind mount in
   a private mount namespace when running as root (root ignores file modes), else ``chmod a-w``.
5. From the read-only copy, with ``VERCEL=1`` and only the variables given here, the entrypoint
   is imported as the runtime's trampoline does (the vendor directory added as a site directory,
   the module imported by name, its ``app`` taken), served on loopback, and asked for
   ``/healthz`` and ``/readyz`` over HTTP. The same import without ``DATABASE_URL`` must fail
   with the ConfigError that names it.

Exit status 0 when all of that holds; the reason otherwise.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PYTHON = (3, 12)  # @vercel/python 25: the default, and the oldest version it runs
# @vercel/python 25 packFunctionBundle: always left out of the function.
BUILDER_EXCLUDES = (
    ".git/**", ".gitignore", ".vercel/**", ".pnpm-store/**", "**/node_modules/**", "**/.next/**",
    "**/.nuxt/**", "**/.venv/**", "**/venv/**", "**/__pycache__/**", "**/.mypy_cache/**",
    "**/.ruff_cache/**", "**/public/**", "**/pnpm-lock.yaml", "**/yarn.lock", "**/package-lock.json",
)
# @vercel/python-analysis loadPythonManifest: the first one present wins.
MANIFESTS = ("pyproject.toml", "Pipfile.lock", "Pipfile", "requirements.frozen.txt",
             "requirements-frozen.txt", "requirements.txt", "requirements.in", "requirements/prod.txt")


class CheckFailed(Exception):
    pass


# --- what Vercel would read -------------------------------------------------------------------


def build_config(root: Path = ROOT) -> dict:
    """The one ``@vercel/python`` build of vercel.json: its entrypoint and config."""
    config = json.loads((root / "vercel.json").read_text())
    builds = [b for b in config.get("builds", []) if b.get("use", "").startswith("@vercel/python")]
    if len(builds) != 1:
        raise CheckFailed("vercel.json must declare exactly one @vercel/python build")
    return builds[0]


def _expand_braces(pattern: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[:match.start()], pattern[match.end():]
    return [p for option in match.group(1).split(",") for p in _expand_braces(head + option + tail)]


def _glob_regex(pattern: str) -> re.Pattern:
    """A minimatch-style glob (``**`` spans folders, ``*`` does not) as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def _excluded(path: str, patterns: list[str]) -> bool:
    return any(_glob_regex(p).match(path) for pattern in patterns for p in _expand_braces(pattern))


def bundle_files(root: Path = ROOT) -> list[str]:
    """The repository files that end up in the function, relative to the root."""
    def git(*args: str) -> set[str]:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", *args],
                             check=True, capture_output=True).stdout.decode()
        return {name for name in out.split("\0") if name}

    files = git("--cached")
    if (root / ".vercelignore").exists():
        files -= git("--cached", "--ignored", "--exclude-from=.vercelignore")
    excludes = list(BUILDER_EXCLUDES)
    config_excludes = build_config(root).get("config", {}).get("excludeFiles", [])
    excludes += [config_excludes] if isinstance(config_excludes, str) else list(config_excludes)
    return sorted(f for f in files if not _excluded(f, excludes) and (root / f).is_file())


def manifest(files: list[str]) -> str:
    for name in MANIFESTS:
        if name in files:
            return name
    raise CheckFailed("no dependency manifest in the bundle: Vercel would install nothing")


def python_version(root: Path, files: list[str]) -> tuple[int, int]:
    request = None
    if ".python-version" in files:
        for line in (root / ".python-version").read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                request = line.strip()
                break
    elif manifest(files) == "pyproject.toml":
        request = tomllib.loads((root / "pyproject.toml").read_text()).get("project", {}).get("requires-python")
    match = re.search(r"(\d+)\.(\d+)", request or "")
    version = (int(match.group(1)), int(match.group(2))) if match else DEFAULT_PYTHON
    return max(version, DEFAULT_PYTHON)


def find_python(version: tuple[int, int]) -> str:
    name = "python%d.%d" % version
    candidates = [shutil.which(name)] + sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version[0]}.{version[1]}.*/bin/{name}")))
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.executable, *sys.version_info[:2])"],
                               cwd=ROOT, capture_output=True, text=True)
        parts = probe.stdout.split()
        if probe.returncode == 0 and tuple(map(int, parts[1:3])) == version:
            return parts[0]
    raise CheckFailed(f"{name} (the version Vercel would run) is not installed here")


# --- build and start --------------------------------------------------------------------------


def installed_dependencies(python: str, requirements: list[str], manifest_bytes: bytes, use_cache: bool) -> Path:
    """A vendor directory holding exactly the manifest's dependencies for ``python``.

    Kept between runs under the user's cache, keyed by the manifest's bytes and the interpreter:
    the same pins on the same Python install the same files, so a second run skips the install
    (on a miss pip's own cache spares the downloads). ``--no-cache`` installs afresh."""
    version = subprocess.run([python, "-c", "import sys, platform; print(sys.version, platform.machine())"],
                             check=True, capture_output=True, text=True).stdout
    key = hashlib.sha256(manifest_bytes + b"\0" + version.encode() + b"\0" + " ".join(requirements).encode()).hexdigest()[:20]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "switchboard-vercel-check"
    target = cache / key
    if use_cache and target.is_dir():
        print(f"  dependencies: reused {target}")
        return target
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="install-", dir=cache))
    if requirements:
        command = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
                   "--target", str(staging), *requirements]
        installed = subprocess.run(command, capture_output=True, text=True)
        if installed.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise CheckFailed(f"installing the dependencies failed:\n{installed.stderr[-3000:]}")
    for old in cache.iterdir():  # one build kept: the cache does not grow with every pin change
        if old != staging:
            shutil.rmtree(old, ignore_errors=True)
    staging.rename(target)
    return target


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build(out: Path, root: Path = ROOT, use_cache: bool = True) -> tuple[str, str]:
    """Lay out the function in ``out``; return (interpreter, entrypoint module)."""
    files = bundle_files(root)
    source = manifest(files)
    version = python_version(root, files)
    python = find_python(version)
    print(f"  bundle: {len(files)} files; dependencies from {source}; Python {version[0]}.{version[1]}")
    if source == "pyproject.toml":
        requirements = tomllib.loads((root / source).read_text()).get("project", {}).get("dependencies", [])
    elif source.startswith("requirements"):
        requirements = ["-r", str(root / source)]
    else:
        raise CheckFailed(f"{source}: this check reads only pyproject.toml and requirements files")
    vendor = installed_dependencies(python, requirements, (root / source).read_bytes(), use_cache)
    task = out / "task"
    for name in files:
        (task / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, task / name)
    # Hard links are safe only under the read-only bind mount; chmod would reach the cache too.
    shutil.copytree(vendor, task / "_vendor", copy_function=_link_or_copy if os.geteuid() == 0 else shutil.copy2)
    entrypoint = build_config(root)["src"]
    return python, entrypoint[:-3].replace("/", ".")


# Runs inside the read-only copy: what the runtime's trampoline does, then a loopback server.
DRIVER = r"""
import importlib, os, site, sys
task = os.getcwd()
try:
    open(os.path.join(task, ".write-probe"), "w").close()
    sys.exit("the function's directory is writable; the check would prove nothing")
except OSError:
    pass
site.addsitedir(os.path.join(task, "_vendor"))
sys.path.insert(0, task)
app = getattr(importlib.import_module(sys.argv[1]), "app")
if sys.argv[2] == "import-only":
    sys.exit(0)
from wsgiref.simple_server import make_server
server = make_server("127.0.0.1", 0, app)
print(server.server_port, flush=True)
server.serve_forever()
"""


def _read_only(task: Path, command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", str(task)], check=True)
        return command
    if not shutil.which("unshare"):
        raise CheckFailed("running as root without unshare: cannot make the copy read-only")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && cd "$0" && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", script, str(task), *command]


def start(python: str, module: str, task: Path, env: dict[str, str], mode: str) -> subprocess.Popen:
    home = str(task.parent / "tmp")  # the function's writable /tmp, removed with the build
    os.makedirs(home, exist_ok=True)
    base = {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "VERCEL": "1"}
    command = _read_only(task, [python, "-I", "-S", "-c", DRIVER, module, mode])
    return subprocess.Popen(command, cwd=task, env={**base, **env}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def check(database_url: str, redis_url: str | None, keep: bool = False, use_cache: bool = True) -> None:
    out = Path(tempfile.mkdtemp(prefix="vercel-check-"))
    try:
        started = time.monotonic()
        python, module = build(out, use_cache=use_cache)
        task = out / "task"
        print(f"  built in {time.monotonic() - started:.0f} s at {out}")

        refused = start(python, module, task, {}, "import-only")
        _, err = refused.communicate(timeout=60)
        last = err.strip().splitlines()[-1] if err.strip() else ""
        if refused.returncode == 0 or "ConfigError" not in last or "DATABASE_URL" not in last:
            raise CheckFailed(f"without DATABASE_URL the import should fail naming it; got: {err[-2000:]}")
        print(f"  without DATABASE_URL: {last}")

        env = {"DATABASE_URL": database_url, **({"REDIS_URL": redis_url} if redis_url else {})}
        server = start(python, module, task, env, "serve")
        try:
            port = server.stdout.readline().strip()
            if not port.isdigit():
                server.kill()
                raise CheckFailed(f"the function did not start: {server.communicate(timeout=10)[1][-3000:]}")
            for path in ("/healthz", "/readyz"):
                status, body = get(f"http://127.0.0.1:{port}{path}")
                print(f"  GET {path} -> {status} {json.dumps(body)}")
                if status != 200 or body.get("status") != "ok":
                    raise CheckFailed(f"{path} answered {status} {body}")
        finally:
            server.terminate()
            server.wait(timeout=10)
    finally:
        if not keep:
            subprocess.run(["chmod", "-R", "u+w", str(out)], check=False)
            shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL URL the function can reach")
    parser.add_argument("--redis-url", help="the Redis the function shares (required by the app on Vercel)")
    parser.add_argument("--keep", action="store_true", help="leave the built function on disk")
    parser.add_argument("--no-cache", action="store_true", help="install the dependencies afresh")
    args = parser.parse_args()
    try:
        check(args.database_url, args.redis_url, keep=args.keep, use_cache=not args.no_cache)
    except (CheckFailed, subprocess.CalledProcessError) as exc:
        print(f"vercel check FAILED: {exc}", file=sys.stderr)
        return 1
    print("vercel check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
