"""The command lines the README promises: app.py's flags and the flask commands."""

import os
import subprocess
import sys

from oneapi.config import VERSION
from tests.conftest import ROOT


def run(*args, env=None):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_version_and_help():
    assert run("app.py", "--version").stdout.strip() == VERSION
    help_text = run("app.py", "--help").stdout
    for flag in ("--port", "--log-dir", "--version", "--help"):
        assert flag in help_text


def test_setup_is_idempotent_and_reset_password_works(tmp_path):
    env = {"DATA_DIR": str(tmp_path), "SQL_DSN": "", "SQLITE_PATH": str(tmp_path / "x.db")}
    first = run("-m", "flask", "--app", "app", "setup", env=env)
    assert first.returncode == 0, first.stderr
    assert "default password" in first.stderr
    again = run("-m", "flask", "--app", "app", "setup", env=env)
    assert again.returncode == 0 and "created the root user" not in again.stderr
    reset = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "reset-password", "root"], cwd=ROOT,
                           input="another-pass\nanother-pass\n", capture_output=True, text=True, timeout=60,
                           env={**os.environ, **env})
    assert reset.returncode == 0, reset.stderr
    after = run("-m", "flask", "--app", "app", "setup", env=env)
    assert "default password" not in after.stderr
    refused = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "reset-password", "root"], cwd=ROOT,
                             input="123456\n123456\n", capture_output=True, text=True, timeout=60, env={**os.environ, **env})
    assert refused.returncode != 0 and "8 to 64 characters" in refused.stderr


def test_initial_root_password_and_tokens(tmp_path):
    env = {"DATA_DIR": str(tmp_path), "SQL_DSN": "", "SQLITE_PATH": str(tmp_path / "y.db"),
           "INITIAL_ROOT_PASSWORD": "chosen-at-start", "INITIAL_ROOT_TOKEN": "sk-" + "a" * 48,
           "INITIAL_ROOT_ACCESS_TOKEN": "b" * 32}
    result = run("-m", "flask", "--app", "app", "setup", env=env)
    assert result.returncode == 0 and "default password" not in result.stderr
    import sqlite3

    with sqlite3.connect(tmp_path / "y.db") as conn:
        users = conn.execute("select username, must_change_password, access_token from users").fetchall()
        tokens = conn.execute("select name, key_hash, unlimited_quota from tokens").fetchall()
    assert users[0][0] == "root" and users[0][1] == 0 and users[0][2] != "b" * 32 and len(users[0][2]) == 64
    assert tokens[0][0] == "Initial Root Token" and tokens[0][1] != "a" * 48 and tokens[0][2] == 1
