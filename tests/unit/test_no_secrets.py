"""No secret is committed, and no template value works in production.

A scan of every file of the repository (tracked, and untracked but not ignored) for the shapes
real credentials have: private keys, cloud and SaaS tokens, passwords inside URLs and password
assignments, values given to ``SLIPWAY_API_KEYS``. Documented placeholders (``change-me``,
``password``, ``${VAR}``, ``<...>``) pass; anything else fails with the file and line (never the
value). Then the production templates: ``deploy/prod/dagster.yaml`` takes every password from the
environment, ``env.example``'s secrets are placeholders that ``slipwayctl up`` refuses to start
with, and the Redis/Postgres fragments listen on loopback and trust nobody.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROD = ROOT / "deploy" / "prod"
SKIP_DIRS = {".git", ".venv", "data", ".dagster", ".prod", "node_modules", "__pycache__"}
MAX_BYTES = 2_000_000

PLACEHOLDER = re.compile(
    r"""^(?:
        | change-?me.* | .*change-me.* | password | passw(?:or)?d? | pass | pw | secret | redacted
        | x+ | \*+ | \.\.\. | .*\.\.\.
        | \$\{?[A-Za-z_][A-Za-z0-9_]*\}? | <[^>]*> | \{[^}]*\} | %\([a-z_]+\)s | \[[^]]*\]
    )$""",
    re.IGNORECASE | re.VERBOSE,
)

# Each rule: a name and a pattern; a pattern with a group is a finding only when the group is
# not a placeholder (so "password=change-me" passes and "password=hunter2" does not).
RULES: list[tuple[str, re.Pattern[str]]] = [
    ("private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b")),
    (
        "AWS secret access key",
        re.compile(
            r"(?i)aws_secret_access_key\s*[=:]\s*[\"']?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
    ),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b")),
    ("Stripe live key", re.compile(r"\b[sr]k_live_[0-9a-zA-Z]{20,}")),
    (
        "password in a URL",
        re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]*:([^/\s@'\"]+)@[\w.\[\]-]"),
    ),
    (
        "password assignment",
        re.compile(
            r"(?i)\b[a-z_]*(?:password|passwd|secret|api_key|apikey|token)\b[\"']?\s*[:=]\s*"
            r"[\"']([^\"'\s]{4,})[\"']"
        ),
    ),
    ("SLIPWAY_API_KEYS value", re.compile(r"SLIPWAY_API_KEYS\s*=\s*[\"']?([^\s\"'#]+)")),
]


def repository_files() -> list[Path]:
    """Tracked files and untracked ones git does not ignore (or every file, without git)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        paths = [ROOT / p for p in listed.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        paths = [
            Path(d) / f
            for d, dirs, files in os.walk(ROOT)
            if not dirs.__setitem__(slice(None), [x for x in dirs if x not in SKIP_DIRS])
            for f in files
        ]
    return [p for p in paths if p.is_file() and not SKIP_DIRS & set(p.relative_to(ROOT).parts)]


def findings(text: str) -> list[tuple[int, str]]:
    """(line, rule) for every credential-shaped string in ``text`` that is not a placeholder."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for name, pattern in RULES:
            for match in pattern.finditer(line):
                value = match.group(1) if pattern.groups else None
                if value is not None and (PLACEHOLDER.match(value) or _is_code(value)):
                    continue
                found.append((number, name))
    return found


def _is_code(value: str) -> bool:
    """A value that is an expression, not a literal secret: a call, an attribute, an f-string."""
    return bool(re.search(r"[(){}]|^[a-z_]+\.[a-z_]+", value))


def test_the_scanner_finds_each_kind_of_secret_and_passes_placeholders() -> None:
    """Samples built at run time, so that this file itself holds none."""
    key_id = "AKIA" + "Q7XK2M4N6P8R0T2V"
    aws_value = "wJalrXUtnFEMI" + "/K7MDENG/bPxRfiCYz9Q8x3LpQ2"
    samples = [
        ("private key", "-----BEGIN RSA " + "PRIVATE KEY-----"),
        ("AWS access key id", f"aws_access_key_id = {key_id}"),
        ("AWS secret access key", f"AWS_SECRET_ACCESS_KEY={aws_value}"),
        ("GitHub token", "token: ghp_" + "a1B2c3D4" * 5),
        ("Slack token", "xoxb-" + "123456789012-abcdef"),
        ("Google API key", "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
        ("Stripe live key", "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"),
        ("password in a URL", "postgresql://dagster:" + "Tr0ub4dor&3" + "@db.internal:5432/x"),
        ("password assignment", 'password = "' + "hunter2hunter2" + '"'),
        ("SLIPWAY_API_KEYS value", "SLIPWAY_API_KEYS=" + "q8Zt0cN3" * 4),
    ]
    for rule, text in samples:
        assert rule in [name for _, name in findings(text)], rule
    placeholders = [
        "redis://:change-me@127.0.0.1:6379/0",
        "postgresql+psycopg2://user:password@host:port/db",
        "postgresql://dagster:${SLIPWAY_PG_PASSWORD}@127.0.0.1/x",
        "SLIPWAY_API_KEYS=change-me-to-a-generated-key",
        "AWS_ACCESS_KEY_ID=AKIA...",
        'password: ""',
        "redis://[:password@]host:port/db",
        'url = f"postgresql://{user}:{password}@{host}/db"',
        "password=os.environ['SLIPWAY_PG_PASSWORD']",
    ]
    for text in placeholders:
        assert findings(text) == [], (text, findings(text))


def test_no_committed_secrets() -> None:
    files = repository_files()
    assert len(files) > 50, "the scan must see the repository"
    assert ROOT / "deploy/prod/env.example" in files
    problems = []
    for path in files:
        raw = path.read_bytes()[:MAX_BYTES]
        if b"\0" in raw:
            continue  # images and other binaries
        for line, rule in findings(raw.decode("utf-8", "replace")):
            problems.append(f"{path.relative_to(ROOT)}:{line}: {rule}")
    assert not problems, "credential-shaped values committed:\n" + "\n".join(problems)


# -- production templates -----------------------------------------------------------------------
def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [
            kv for k, v in node.items() for kv in [(f"{path}.{k}", v), *_walk(v, f"{path}.{k}")]
        ]
    return []


def test_dagster_yaml_takes_every_credential_from_the_environment() -> None:
    config = yaml.safe_load((PROD / "dagster.yaml").read_text())
    credentials = [
        (path, value)
        for path, value in _walk(config)
        if re.search(r"(password|username|hostname|secret|token)$", path)
    ]
    assert any(path.endswith("password") for path, _ in credentials)
    for path, value in credentials:
        assert isinstance(value, dict) and set(value) == {"env"}, f"{path} is not an env: reference"


def _env_example() -> dict[str, str]:
    values = {}
    for line in (PROD / "env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def test_env_example_secrets_are_placeholders_that_slipwayctl_refuses(tmp_path: Path) -> None:
    values = _env_example()
    secrets = {
        name: value
        for name, value in values.items()
        if re.search(r"PASSWORD|SECRET|TOKEN|_KEYS?$|_KEY_ID$", name) or "://" in value
    }
    assert {"SLIPWAY_PG_PASSWORD", "AWS_SECRET_ACCESS_KEY", "SLIPWAY_API_KEYS"} <= set(secrets)
    for name, value in secrets.items():
        if "://" in value:
            assert findings(value) == [], name
            assert "@" not in value or "change-me" in value, name
        else:
            assert PLACEHOLDER.match(value), f"{name} in env.example is not a placeholder"

    # Loaded as it is, the template does not start: slipwayctl names every placeholder left.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "AWS_", "PG"))}
    env.update(values)
    env["SLIPWAY_PROD_DIR"] = str(tmp_path / "prod")
    env["SLIPWAY_VENV_BIN"] = str(tmp_path / "no-venv")  # were the check to pass: start nothing
    done = subprocess.run(
        [str(PROD / "slipwayctl"), "up"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "still the env.example placeholder" in done.stderr
    for name in ("AWS_SECRET_ACCESS_KEY", "SLIPWAY_PG_PASSWORD", "SLIPWAY_FEAST_ONLINE"):
        assert name in done.stderr
    assert "change-me" not in done.stderr  # names, never values
    assert not (tmp_path / "prod").exists()


def test_slipwayctl_keeps_the_ui_on_loopback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "AWS_", "PG"))}
    env.update(
        {
            name: value.replace("change-me", "s3cr3t-from-the-vault").replace("AKIA...", "")
            for name, value in _env_example().items()
        }
    )
    env["SLIPWAY_PROD_DIR"] = str(tmp_path / "prod")
    env["SLIPWAY_VENV_BIN"] = str(tmp_path / "no-venv")
    env["SLIPWAY_WEBSERVER_HOST"] = "0.0.0.0"
    done = subprocess.run(
        [str(PROD / "slipwayctl"), "up"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "refusing to bind the UI to 0.0.0.0" in done.stderr
    env["SLIPWAY_WEBSERVER_ALLOW_REMOTE"] = "1"  # the operator vouches for a proxy elsewhere
    done = subprocess.run(
        [str(PROD / "slipwayctl"), "up"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "no dagster-webserver" in done.stderr  # past the check


def test_redis_and_postgres_fragments_listen_on_loopback_and_trust_nobody() -> None:
    redis_conf = (PROD / "redis.conf").read_text()
    directives = [line.split() for line in redis_conf.splitlines() if line and line[0] != "#"]
    binds = [d[1:] for d in directives if d[0] == "bind"]
    assert binds == [["127.0.0.1", "-::1"]]
    assert ["protected-mode", "yes"] in directives
    assert not [d for d in directives if d[0] in ("requirepass", "user", "masterauth")]

    pg_conf = (PROD / "postgresql.conf").read_text()
    assert re.search(r"^listen_addresses\s*=\s*'localhost'\s*$", pg_conf, re.MULTILINE)
    assert re.search(r"^password_encryption\s*=\s*'scram-sha-256'", pg_conf, re.MULTILINE)
    rules = [
        line.split()
        for line in (PROD / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules
    for rule in rules:
        assert rule[-1] in ("peer", "scram-sha-256"), rule  # never trust, md5 or password
        if rule[0].startswith("host"):
            assert rule[3] in ("127.0.0.1/32", "::1/128"), rule


@pytest.mark.parametrize("name", ["Makefile", "deploy/prod/slipwayctl"])
def test_the_ui_launchers_default_to_loopback(name: str) -> None:
    text = (ROOT / name).read_text()
    if name == "Makefile":
        ui = re.search(r"^ui:.*\n\t(.*)$", text, re.MULTILINE)
        assert ui and "-h 127.0.0.1" in ui.group(1)
        serve = re.search(r"^serve:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
        recipe = serve.group(1).rstrip().splitlines() if serve else []
        assert recipe and recipe[-1].endswith("-m slipway.serving")  # the checked launcher
    else:
        assert 'HOST="${SLIPWAY_WEBSERVER_HOST:-127.0.0.1}"' in text
