"""`kiln users` and `kiln keys`: create, list and revoke, against Kiln's records database."""

import pytest
from typer.testing import CliRunner

from kiln.access.errors import Unauthorized
from kiln.access.service import AccessControl
from kiln.cli import app
from kiln.settings import get_settings

runner = CliRunner()


def test_keys_create_list_revoke():
    created = runner.invoke(app, ["keys", "create", "cli-robot", "-p", "read"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    access = AccessControl(get_settings())
    assert access.authenticate(None, key).permissions == ("read",)
    listing = runner.invoke(app, ["keys", "list"]).output
    assert "cli-robot" in listing and key not in listing
    assert runner.invoke(app, ["keys", "create", "cli-robot"]).exit_code == 1  # exists
    assert runner.invoke(app, ["keys", "revoke", "cli-robot"]).exit_code == 0
    assert "cli-robot" not in runner.invoke(app, ["keys", "list"]).output
    assert runner.invoke(app, ["keys", "revoke", "cli-robot"]).exit_code == 1
    bad = runner.invoke(app, ["keys", "create", "x", "-p", "root"])
    assert bad.exit_code == 1 and "permissions" in bad.output


def test_users_create_list_revoke():
    created = runner.invoke(app, ["users", "create", "cli-carol", "-p", "read", "-p", "write"], input="correct horse\ncorrect horse\n")
    assert created.exit_code == 0, created.output
    access = AccessControl(get_settings())
    token = access.login("cli-carol", "correct horse").access_token
    assert access.authenticate(f"Bearer {token}", None).name == "cli-carol"
    listing = runner.invoke(app, ["users", "list"]).output
    assert "cli-carol" in listing and "active" in listing
    assert runner.invoke(app, ["users", "revoke", "cli-carol"]).exit_code == 0
    assert "revoked" in runner.invoke(app, ["users", "list"]).output
    with pytest.raises(Unauthorized):
        access.authenticate(f"Bearer {token}", None)
    assert runner.invoke(app, ["users", "revoke", "nobody-here"]).exit_code == 1
    short = runner.invoke(app, ["users", "create", "cli-dan"], input="short\nshort\n")
    assert short.exit_code == 1 and "password" in short.output
