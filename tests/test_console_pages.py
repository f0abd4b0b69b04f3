"""Console pages through Flask's test client: every page renders for the roles that may see it and no
other, posted forms need the session's CSRF token, and admin Markdown/HTML is sanitised."""

import re

import pytest

from tests.conftest import TEST_PASSWORD, add_channel, add_token

USER_PAGES = ["/dashboard", "/token", "/token/add", "/log", "/topup", "/setting", "/about", "/"]
ADMIN_PAGES = ["/channel", "/channel/add", "/user", "/user/add", "/redemption"]
ROOT_PAGES = ["/setting/operation", "/setting/system", "/setting/other"]


def csrf(client, path="/login"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def common_user(root, app, name="alice"):
    assert root.post("/api/user/", json={"username": name, "password": TEST_PASSWORD}).json["success"]
    other = app.test_client()
    assert other.post("/api/user/login", json={"username": name, "password": TEST_PASSWORD}).json["success"]
    return other


def test_every_page_renders_for_root(root, upstream):
    add_channel(root, upstream.url)
    token = add_token(root, name="mine")
    assert root.post("/api/redemption/", json={"name": "batch", "count": 2, "quota": 10}).json["success"]
    for path in USER_PAGES + ADMIN_PAGES + ROOT_PAGES + [f"/token/edit/{token['id']}", "/channel/edit/1",
                                                         "/log?type=2&start=2020-01-01&end=2099-01-01&channel=1"]:
        reply = root.get(path)
        assert reply.status_code == 200, path
        assert token["key"][3:] not in reply.get_data(as_text=True)
    assert "sk-upstream-secret-key-123456" not in root.get("/channel/edit/1").get_data(as_text=True)


def test_pages_follow_roles(root, app):
    alice = common_user(root, app)
    for path in USER_PAGES:
        assert alice.get(path).status_code == 200, path
    for path in ADMIN_PAGES + ROOT_PAGES:
        assert alice.get(path).status_code == 403, path
    anonymous = app.test_client()
    for path in ["/dashboard", "/token", "/channel", "/setting/other"]:
        reply = anonymous.get(path)
        assert reply.status_code == 302 and "/login" in reply.headers["Location"], path
    assert anonymous.get("/").status_code == 200 and anonymous.get("/about").status_code == 200


def test_someone_elses_token_is_not_found(root, app):
    token = add_token(root, name="root-token")
    alice = common_user(root, app)
    assert alice.get(f"/token/edit/{token['id']}").status_code == 404


def test_an_admin_cannot_open_root(root, app):
    common_user(root, app, "bob")
    assert root.post("/api/user/manage", json={"username": "bob", "action": "promote"}).json["success"]
    bob = app.test_client()
    assert bob.post("/api/user/login", json={"username": "bob", "password": TEST_PASSWORD}).json["success"]
    assert bob.get("/user").status_code == 200
    assert bob.get("/user/edit/1").status_code == 403
    assert bob.get("/setting/other").status_code == 403


@pytest.mark.parametrize("path", ["/login", "/logout", "/user/password"])
def test_posted_forms_need_the_csrf_token(app, path):
    client = app.test_client()
    reply = client.post(path, data={"username": "root", "password": "123456"})
    assert reply.status_code == 400 and "expired" in reply.get_data(as_text=True)


def test_login_form_with_the_token(app):
    client = app.test_client()
    token = csrf(client)
    reply = client.post("/login", data={"username": "root", "password": "123456", "csrf_token": "x" + token})
    assert reply.status_code == 400
    reply = client.post("/login", data={"username": "root", "password": "123456", "csrf_token": token})
    assert reply.status_code == 302 and reply.headers["Location"].endswith("/user/password")
    token = csrf(client, "/user/password")  # login starts a new session, with a new token
    reply = client.post("/user/password", data={"current": "123456", "password": TEST_PASSWORD,
                                                "password2": TEST_PASSWORD, "csrf_token": token})
    assert reply.status_code == 302 and reply.headers["Location"].endswith("/dashboard")
    assert client.get("/channel").status_code == 200


def test_admin_markdown_is_sanitised(root, app):
    hostile = "# Hi\n\n<script>alert(1)</script><img src=x onerror=alert(2)> [x](javascript:alert(3)) **bold**"
    for key in ("HomePageContent", "About", "Notice", "Footer"):
        assert root.put("/api/option/", json={"key": key, "value": hostile}).json["success"]
    assert root.put("/api/option/", json={"key": "Logo", "value": "javascript:alert(4)"}).json["success"]
    for path in ("/", "/about"):
        page = app.test_client().get(path).get_data(as_text=True)
        assert "<h1>Hi</h1>" in page and "<strong>bold</strong>" in page
        assert "<script>alert" not in page and "onerror=" not in page and 'href="javascript:' not in page
        assert 'src="javascript:' not in page


def test_home_page_url_is_an_iframe(root, app):
    assert root.put("/api/option/", json={"key": "HomePageContent", "value": "https://example.com/welcome"}).json[
        "success"]
    page = app.test_client().get("/").get_data(as_text=True)
    assert '<iframe class="embedded" src="https://example.com/welcome"' in page and "sandbox=" in page


def test_top_up_link_carries_the_user(root):
    assert root.put("/api/option/", json={"key": "TopUpLink", "value": "https://pay.example.com/buy?x=1"}).json[
        "success"]
    page = root.get("/topup").get_data(as_text=True)
    assert re.search(r'href="https://pay\.example\.com/buy\?x=1&amp;username=root&amp;user_id=1&amp;'
                     r'transaction_id=[0-9a-f-]{36}"', page)


def test_the_settings_page_offers_every_option():
    from oneapi.services.options import DEFAULTS
    from oneapi.web.settings_pages import GROUPS

    shown = {key for _, _, keys in GROUPS for key in keys}
    # Theme is accepted for compatibility but this console has one look (docs/compatibility.md).
    assert set(DEFAULTS) - shown == {"Theme"} and shown <= set(DEFAULTS)
