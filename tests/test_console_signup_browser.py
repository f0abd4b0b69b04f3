"""Signing up and getting back in, in real headless Chromium against the real server: register with an
emailed code and an invitation link, bind an address, forget the password and reset it by the mailed link.
Mail goes to a real SMTP server on 127.0.0.1 (aiosmtpd). Screenshots go to test-artifacts/."""

import re
import time

import pytest
import requests

from tests.conftest import TEST_PASSWORD
from tests.test_console_browser import browser, page, shot, sync_api  # noqa: F401  (fixtures)
from tests.test_notify import smtp  # noqa: F401  (the SMTP server fixture)

pytestmark = pytest.mark.timeout(240)


def wait_for_mail(inbox, count, seconds=10.0):
    deadline = time.monotonic() + seconds
    while len(inbox.messages) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(inbox.messages) >= count
    return inbox.messages[count - 1]["body"]


def test_sign_up_bind_and_reset_in_the_browser(live_server_factory, smtp, page):  # noqa: F811
    inbox = smtp()
    server = live_server_factory()
    base = server.url
    admin = requests.Session()
    assert admin.post(base + "/api/user/login", json={"username": "root", "password": "123456"}).json()["success"]
    assert admin.put(base + "/api/user/self", json={"password": TEST_PASSWORD}).json()["success"]
    for key, value in {"SMTPServer": "127.0.0.1", "SMTPPort": str(inbox.port), "SMTPFrom": "gw@example.test",
                       "EmailVerificationEnabled": "true", "QuotaForInvitee": "700", "QuotaForInviter": "900",
                       "ServerAddress": base}.items():
        assert admin.put(base + "/api/option/", json={"key": key, "value": value}).json()["success"]
    aff = admin.get(base + "/api/user/aff").json()["data"]

    # Register through the invitation link, with a code mailed to the address.
    page.goto(base + "/login")
    page.click("text=Register")
    page.goto(base + f"/register?aff={aff}")
    assert page.input_value("input[name=aff_code]") == aff
    page.fill("input[name=username]", "dora")
    page.fill("input[name=password]", "dora-password-1")
    page.fill("input[name=password2]", "dora-password-1")
    page.fill("input[name=email]", "dora@example.test")
    page.click("button[data-send-code]")
    code = re.search(r"verification code is (\w+)", wait_for_mail(inbox, 1)).group(1)
    page.fill("input[name=verification_code]", code)
    shot(page, "register")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/dashboard")
    assert "Welcome, dora" in page.inner_text("#messages")
    me = page.evaluate("fetch('/api/user/self').then(r => r.json())")["data"]
    assert me["email"] == "dora@example.test" and me["quota"] == 700

    # Bind another address from the settings page.
    page.goto(base + "/setting")
    page.fill("#bind-email-address", "dora@corp.test")
    page.click("#bind-email button[data-send-code]")
    code = re.search(r"verification code is (\w+)", wait_for_mail(inbox, 2)).group(1)
    page.fill("#bind-email input[name=code]", code)
    page.click("#bind-email button[type=submit]")
    page.wait_for_selector("text=Email address bound.")
    assert page.evaluate("fetch('/api/user/self').then(r => r.json())")["data"]["email"] == "dora@corp.test"

    # Forget the password; reset it by the mailed link.
    page.click("button:has-text('Log out')")
    page.goto(base + "/login")
    page.click("text=Forgot your password?")
    page.fill("input[name=email]", "dora@corp.test")
    shot(page, "forgot-password")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/login")
    link = re.search(r"(http\S+/user/reset\?\S+)", wait_for_mail(inbox, 3)).group(1)
    page.goto(link)
    page.click("text=Give me a new password")
    password = page.inner_text("[data-new-password]").strip()
    shot(page, "reset-password")
    assert len(password) == 12
    page.goto(base + "/login")
    page.fill("input[name=username]", "dora")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("button:has-text('Log out')")
    assert page.evaluate("fetch('/api/user/self').then(r => r.json())")["data"]["username"] == "dora"
