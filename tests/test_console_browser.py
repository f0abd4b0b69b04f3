"""The web console in real headless Chromium against the real server: the whole first-day journey, and
hostile text in every field a user or admin can fill staying inert. Screenshots go to test-artifacts/."""

import os
import re

import pytest
import requests

from tests.conftest import ROOT, TEST_PASSWORD

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = os.path.join(ROOT, "test-artifacts")

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Chromium is not installed (apt-get install -y chromium)"),
    pytest.mark.timeout(240),
]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.dialogs = []

    def on_dialog(dialog):
        page.dialogs.append((dialog.type, dialog.message))
        dialog.accept()

    page.on("dialog", on_dialog)
    yield page
    context.close()


def shot(page, name, full_page=True):
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"), full_page=full_page)


def log_in(page, base, password):
    page.goto(base + "/login")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def flash_text(page):
    return page.locator("#messages .flash").first.inner_text()


def test_journey(live_server_factory, upstream, page):
    server = live_server_factory()
    base = server.url

    # First login with the default password: every page leads to the password change first.
    log_in(page, base, "123456")
    page.wait_for_url(base + "/user/password")
    assert "default password" in page.inner_text("main")
    shot(page, "01-forced-password-change")
    page.goto(base + "/channel")
    assert page.url == base + "/user/password"
    page.fill("input[name=current]", "123456")
    page.fill("input[name=password]", TEST_PASSWORD)
    page.fill("input[name=password2]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/dashboard")
    assert "Password changed" in flash_text(page)

    # A channel pointing at the mock upstream, with the model list of its type offered as chips.
    page.goto(base + "/channel/add")
    page.select_option("select[name=type]", "1")
    assert page.locator("[data-model-chips] .chip", has_text="gpt-4o-mini").count() == 1
    page.fill("input[name=name]", "mock upstream")
    page.fill("input[name=base_url]", upstream.url)
    page.fill("textarea[name=key]", "sk-upstream-secret-key")
    page.locator("[data-model-chips] .chip", has_text=re.compile(r"^gpt-4o-mini$")).click()
    assert page.input_value("textarea[name=models]") == "gpt-4o-mini"
    shot(page, "02-channel-add")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/channel")
    row = page.locator("tr[data-channel-id]", has_text="mock upstream")
    assert row.count() == 1 and "Enabled" in row.inner_text()
    assert "sk-upstream-secret-key" not in page.content()
    row.locator("button", has_text="Test").click()
    page.wait_for_selector("#messages .flash.ok")
    assert "Channel answered in" in flash_text(page)
    assert "untested" not in page.locator("tr[data-channel-id]", has_text="mock upstream").inner_text()
    shot(page, "03-channels")

    # A token: the full key is shown once, in a dialog with a copy button; the list shows it masked.
    page.goto(base + "/token/add")
    page.fill("input[name=name]", "journey")
    page.check("input[name=unlimited_quota]")
    page.click("button[type=submit]")
    page.wait_for_selector("#secret-dialog[open]")
    key = page.inner_text("#secret-value").strip()
    assert re.fullmatch(r"sk-[0-9A-Za-z]{48}", key), key
    shot(page, "04-token-created", full_page=False)
    page.click("#secret-close")
    page.wait_for_url(base + "/token")
    assert key[3:] not in page.content()
    assert page.locator("tr[data-token-id]", has_text="journey").count() == 1
    shot(page, "05-tokens")

    # A relay call with that key.
    reply = requests.post(base + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                          json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "Hello from the mock upstream."

    # The dashboard and the logs show it.
    page.goto(base + "/dashboard")
    page.wait_for_selector("[data-model-table] tbody tr")
    assert "gpt-4o-mini" in page.inner_text("[data-model-table]")
    assert page.inner_text("#stat-requests").strip() == "1"
    assert page.locator("[data-chart] svg rect").count() >= 1
    shot(page, "06-dashboard")
    page.click("button[data-days='30']")
    page.wait_for_function("document.querySelectorAll('[data-chart] svg text').length > 10")
    page.goto(base + "/log?type=2")
    assert page.locator("table.logs tbody tr", has_text="gpt-4o-mini").count() == 1
    assert page.inner_text("[data-log-count]").strip() == "1"
    assert page.inner_text("[data-log-total]").strip() not in ("$0", "0")
    shot(page, "07-logs")

    # A redemption code, made by the admin and redeemed on the top-up page.
    page.goto(base + "/redemption")
    page.fill("form[data-api] input[name=name]", "welcome")
    page.fill("form[data-api] input[name=quota]", "1000000")
    page.click("form[data-api] button[type=submit]")
    page.wait_for_selector("#secret-dialog[open]")
    code = page.inner_text("#secret-value").strip()
    assert re.fullmatch(r"[0-9a-f]{32}", code), code
    page.click("#secret-close")
    page.wait_for_selector("#messages .flash.ok")
    assert page.locator("tbody tr", has_text="welcome").count() == 1
    shot(page, "08-redemptions")
    page.goto(base + "/topup")
    before = page.inner_text("[data-balance]")
    page.fill("input[name=key]", code)
    page.click("button[type=submit]")
    page.wait_for_selector("#messages .flash.ok")
    assert "Code redeemed: $2 added." in flash_text(page)
    assert page.inner_text("[data-balance]") != before
    page.fill("input[name=key]", code)
    page.click("button[type=submit]")
    page.wait_for_selector("#messages .flash.error")
    assert "already been used" in flash_text(page)
    shot(page, "09-topup")

    # An option with a validation error, then the Notice: a banner on every page, dismissable.
    page.goto(base + "/setting/operation")
    page.fill("textarea[name=GroupRatio]", "{not json")
    page.locator("form[data-options]", has=page.locator("textarea[name=GroupRatio]")).locator("button").click()
    page.wait_for_selector("#messages .flash.error")
    assert "GroupRatio" in flash_text(page)
    page.goto(base + "/setting/other")
    page.fill("textarea[name=Notice]", "Maintenance tonight at **22:00**.")
    page.locator("form[data-options]", has=page.locator("textarea[name=Notice]")).locator("button").click()
    page.wait_for_selector("#messages .flash.ok")
    shot(page, "10-settings")
    page.goto(base + "/")
    assert page.inner_text("#notice .notice-body").strip() == "Maintenance tonight at 22:00."
    assert page.locator("#notice strong").inner_text() == "22:00"
    shot(page, "11-home-with-notice")
    page.click("[data-dismiss-notice]")
    assert page.locator("#notice").count() == 0
    page.goto(base + "/about")
    assert page.locator("#notice").count() == 0

    # Personal settings: a new access token, shown once, that works on the API.
    page.goto(base + "/setting")
    page.click("button[data-call='POST /api/user/token']")
    page.wait_for_selector("#secret-dialog[open]")
    access_token = page.inner_text("#secret-value").strip()
    page.click("#secret-close")
    me = requests.get(base + "/api/user/self", headers={"Authorization": access_token}, timeout=10).json()
    assert me["success"] and me["data"]["username"] == "root"
    page.click("button[data-aff]")
    page.wait_for_function("document.querySelector('[data-aff-link]').value.includes('/register?aff=')")
    shot(page, "12-personal-settings")
    page.goto(base + "/user")
    assert page.locator("tr[data-user-id]", has_text="root").count() == 1
    shot(page, "13-users")

    # A phone-sized screen: the menu folds away and tables become cards.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(base + "/token")
    assert not page.is_visible(".bar nav a[href='/log']")
    page.click(".menu-button")
    assert page.is_visible(".bar nav a[href='/log']")
    shot(page, "14-phone-tokens")

    assert [d for d in page.dialogs if d[0] != "confirm"] == []


PAYLOADS = ["<script>window.__xss=1;alert(1)</script>", "<img src=x onerror=\"window.__xss=2;alert(2)\">"]


def test_hostile_text_stays_inert(live_server_factory, upstream, page):
    server = live_server_factory()
    base = server.url
    api = requests.Session()
    assert api.post(base + "/api/user/login", json={"username": "root", "password": "123456"}).json()["success"]
    assert api.put(base + "/api/user/self", json={"password": TEST_PASSWORD}).json()["success"]

    def ok(method, path, **kwargs):
        reply = api.request(method, base + path, timeout=10, **kwargs).json()
        assert reply["success"], reply
        return reply

    for payload in PAYLOADS:
        ok("POST", "/api/token/", json={"name": payload[:30], "unlimited_quota": True})
        ok("POST", "/api/channel/", json={"name": payload, "type": 1, "key": "k", "base_url": upstream.url,
                                          "models": "gpt-4o-mini", "group": "default"})
        ok("POST", "/api/redemption/", json={"name": payload[:20], "count": 1, "quota": 10})
    ok("PUT", "/api/user/self", json={"display_name": PAYLOADS[1][:20]})
    hostile_markdown = "Hello **there**\n\n" + "\n\n".join(PAYLOADS) + "\n\n[link](javascript:alert(3))"
    for key in ("Notice", "HomePageContent", "About", "Footer"):
        ok("PUT", "/api/option/", json={"key": key, "value": hostile_markdown})
    ok("PUT", "/api/option/", json={"key": "SystemName", "value": PAYLOADS[0]})
    ok("PUT", "/api/option/", json={"key": "Logo", "value": "javascript:alert(4)"})

    log_in(page, base, TEST_PASSWORD)
    page.wait_for_url(base + "/")
    pages = ["/", "/about", "/dashboard", "/token", "/channel", "/redemption", "/user", "/setting",
             "/setting/other", "/log", f"/token/edit/{1}", "/channel/edit/1"]
    for path in pages:
        page.goto(base + path)
        page.wait_for_load_state("load")
        assert page.evaluate("window.__xss") is None, path
        assert page.locator("#notice script, #notice img[onerror], footer script, main script:not([type])").count() == 0
        assert page.locator("a[href^='javascript:']").count() == 0, path
        assert page.locator(".brand img[src^='javascript:']").count() == 0
    # The text itself is shown, escaped, where it was typed.
    page.goto(base + "/token")
    assert page.locator(".token-name", has_text="<script>window.__xss=1;alert(").count() == 1
    page.goto(base + "/channel")
    assert page.locator(".channel-name", has_text=PAYLOADS[1]).count() == 1
    assert PAYLOADS[0] in page.inner_text(".brand")
    page.goto(base + "/")
    assert "Hello there" in page.inner_text("#notice")
    shot(page, "15-xss-inert")
    assert page.dialogs == []


def test_managing_tokens_channels_users_and_codes(live_server_factory, upstream, page):
    server = live_server_factory()
    base = server.url
    api = requests.Session()
    assert api.post(base + "/api/user/login", json={"username": "root", "password": "123456"}).json()["success"]
    assert api.put(base + "/api/user/self", json={"password": TEST_PASSWORD}).json()["success"]
    log_in(page, base, TEST_PASSWORD)
    page.wait_for_url(base + "/")

    # Channels: two keys make two channels; edit one, disable it, delete the disabled ones.
    page.goto(base + "/channel/add")
    page.fill("input[name=name]", "pair")
    page.fill("input[name=base_url]", upstream.url)
    page.fill("textarea[name=key]", "sk-first\nsk-second\n")
    page.click("[data-models-all]")
    assert "gpt-4o-mini" in page.input_value("textarea[name=models]")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/channel")
    assert page.locator("tr[data-channel-id]", has_text="pair").count() == 2
    first = page.locator("tr[data-channel-id]").last.get_attribute("data-channel-id")
    page.goto(base + f"/channel/edit/{first}")
    page.fill("input[name=name]", "edited")
    page.fill("input[name=priority]", "5")
    page.fill("textarea[name=model_mapping]", "not json")
    page.click("button[type=submit]")
    page.wait_for_selector("#messages .flash.error")
    assert "model_mapping" in flash_text(page)
    page.fill("textarea[name=model_mapping]", '{"gpt-3.5-turbo": "gpt-4o-mini"}')
    page.click("button[type=submit]")
    page.wait_for_url(base + "/channel")
    row = page.locator(f"tr[data-channel-id='{first}']")
    assert "edited" in row.inner_text() and "5" in row.inner_text()
    row.locator("button", has_text="Disable").click()
    page.wait_for_selector("#messages .flash.ok")
    assert "Disabled" in page.locator(f"tr[data-channel-id='{first}']").inner_text()
    page.fill("input[name=keyword]", "edit")
    page.click(".search button")
    sync_api.expect(page.locator("tr[data-channel-id]")).to_have_count(1)  # waits for the results page's rows
    page.goto(base + "/channel")
    page.click("button[data-call='DELETE /api/channel/disabled']")
    page.wait_for_selector("#messages .flash.ok")
    assert "1 channels deleted" in flash_text(page)
    assert page.locator("tr[data-channel-id]").count() == 1

    # Tokens: edit every field, disable and enable, a new key (the old one stops working), delete.
    page.goto(base + "/token/add")
    page.fill("input[name=name]", "t1")
    page.click("button[type=submit]")
    page.wait_for_selector("#secret-dialog[open]")
    old_key = page.inner_text("#secret-value").strip()
    page.click("#secret-close")
    page.wait_for_url(base + "/token")
    token_id = page.locator("tr[data-token-id]").first.get_attribute("data-token-id")
    page.goto(base + f"/token/edit/{token_id}")
    page.fill("input[name=name]", "t1-renamed")
    page.fill("input[name=remain_quota]", "1000000")
    page.fill("input[name=remain_times]", "5")
    page.fill("input[name=expired_time]", "2099-01-02T03:04")
    page.fill("input[name=models]", "gpt-4o-mini")
    page.fill("input[name=subnet]", "not-a-subnet")
    page.click("button[type=submit]")
    page.wait_for_selector("#messages .flash.error")
    page.fill("input[name=subnet]", "127.0.0.0/8")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/token")
    row = page.locator(f"tr[data-token-id='{token_id}']")
    assert "t1-renamed" in row.inner_text() and "2099-01-02" in row.inner_text() and "$2" in row.inner_text()
    saved = api.get(base + f"/api/token/{token_id}").json()["data"]
    assert saved["remain_times"] == 5 and saved["models"] == "gpt-4o-mini" and saved["subnet"] == "127.0.0.0/8"
    row.locator("button", has_text="Disable").click()
    page.wait_for_selector("#messages .flash.ok")
    assert "Disabled" in page.locator(f"tr[data-token-id='{token_id}']").inner_text()
    page.locator(f"tr[data-token-id='{token_id}'] button", has_text="Enable").click()
    page.wait_for_selector("#messages .flash.ok")
    assert "Enabled" in page.locator(f"tr[data-token-id='{token_id}']").inner_text()
    page.locator(f"tr[data-token-id='{token_id}'] button", has_text="New key").click()
    page.wait_for_selector("#secret-dialog[open]")
    new_key = page.inner_text("#secret-value").strip()
    page.click("#secret-close")
    assert new_key != old_key
    models = lambda key: requests.get(base + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10)  # noqa: E731
    assert models(new_key).status_code == 200 and models(old_key).status_code == 401
    page.wait_for_selector("#messages .flash.ok")
    page.locator(f"tr[data-token-id='{token_id}'] button", has_text="Delete").click()
    page.wait_for_selector("#messages .flash.ok")
    assert page.locator("tr[data-token-id]").count() == 0
    assert ("confirm", "Delete this token?") in page.dialogs

    # Users: create, edit quota and group, disable, promote.
    page.goto(base + "/user/add")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", "carol-password")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/user")
    user_id = page.locator("tr[data-user-id]", has_text="carol").get_attribute("data-user-id")
    page.goto(base + f"/user/edit/{user_id}")
    page.fill("input[name=quota]", "1500000")
    page.select_option("select[name=group]", "vip")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/user")
    row = page.locator(f"tr[data-user-id='{user_id}']")
    assert "vip" in row.inner_text() and "$3" in row.inner_text()
    row.locator("button", has_text="Disable").click()
    page.wait_for_selector("#messages .flash.ok")
    page.locator(f"tr[data-user-id='{user_id}'] button", has_text="Make admin").click()
    page.wait_for_selector("#messages .flash.ok")
    row = page.locator(f"tr[data-user-id='{user_id}']")
    assert "Disabled" in row.inner_text() and "Admin" in row.inner_text()
    page.fill("input[name=keyword]", "car")
    page.click(".search button")
    sync_api.expect(page.locator("tr[data-user-id]")).to_have_count(1)  # a bare count() raced the page load in CI

    # Redemption codes: a batch of two, one disabled, the batch exported as CSV.
    page.goto(base + "/redemption")
    page.fill("form[data-api] input[name=name]", "batch2")
    page.fill("form[data-api] input[name=count]", "2")
    page.click("form[data-api] button[type=submit]")
    page.wait_for_selector("#secret-dialog[open]")
    codes = page.inner_text("#secret-value").split()
    assert len(codes) == 2
    page.click("#secret-close")
    page.wait_for_selector("#messages .flash.ok")
    page.locator("tbody tr", has_text=codes[0]).locator("button", has_text="Disable").click()
    page.wait_for_selector("#messages .flash.ok")
    assert "Disabled" in page.locator("tbody tr", has_text=codes[0]).inner_text()
    csv_text = page.request.get(base + "/api/redemption/export?name=batch2").text()
    assert len(csv_text.strip().splitlines()) == 3 and codes[1] in csv_text
    shot(page, "16-redemptions-managed")
