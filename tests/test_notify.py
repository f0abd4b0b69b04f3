"""Notifications when the system disables or re-enables a channel (services/notify.py): a real SMTP server
(aiosmtpd) and a real webhook receiver on 127.0.0.1 capture what root is told; one per channel per window;
verified TLS for mail; and no failure of a mail server or webhook ever reaches the relay request."""

import email
import email.policy
import json
import logging
import ssl
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import update

from oneapi.extensions import db
from oneapi.models import Channel, User
from oneapi.models.user import ROLE_ROOT
from oneapi.services import health, mail, notify, scheduler
from tests.conftest import add_channel, add_token, free_port
from tests.mock_upstream import Reply
from tests.test_egress import LocalServer, make_certificate, server_tls

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
UPSTREAM_KEY = "sk-upstream-secret-key-123456"
ROOT_EMAIL = "root@example.test"
REFUSED_KEY = Reply(status=401, error={"error": {"message": "Incorrect API key provided: sk-up***",
                                                 "type": "invalid_request_error", "code": "invalid_api_key"}})


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self):
        self.messages = []
        self.logins = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "message": message,
                              "body": message.get_body(("plain",)).get_content(), "tls": session.ssl is not None})
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.login == b"mailer" and auth_data.password == b"smtp-secret")


@pytest.fixture
def smtp():
    controllers = []

    def start(**parameters):
        inbox = Inbox()
        if parameters.pop("with_auth", False):
            parameters["authenticator"] = inbox.authenticate
        controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), **parameters)
        controller.start()
        controllers.append(controller)
        inbox.port = controller.port
        return inbox

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def receiver():
    servers = []

    def start():
        server = LocalServer()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture(autouse=True)
def _drain(app):
    yield
    notify.wait(app)


def set_options(admin, **values):
    for key, value in values.items():
        reply = admin.put("/api/option/", json={"key": key, "value": value}).json
        assert reply["success"], reply


def set_root_email(app, address=ROOT_EMAIL):
    with app.app_context():
        db.session.execute(update(User).where(User.role == ROLE_ROOT).values(email=address))
        db.session.commit()


def relay(client, key):
    return client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"})


def channel_status(app, channel_id):
    with app.app_context():
        return db.session.get(Channel, channel_id).status


def settle(app, inbox=None, hooks=None, mails=0, posts=0, seconds=5.0):
    """Wait for the notifications in flight, then until the expected counts arrived (or time ran out)."""
    notify.wait(app)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (inbox is None or len(inbox.messages) >= mails) and (hooks is None or len(hooks.requests) >= posts):
            break
        time.sleep(0.02)


def test_a_refused_key_sends_one_mail_and_one_webhook_then_nothing_within_the_window(app, root, upstream, smtp,
                                                                                      receiver):
    app.config["EGRESS_ALLOW_PRIVATE"] = True
    inbox, hooks = smtp(), receiver()
    set_options(root, AutomaticDisableChannelEnabled="true", AutomaticEnableChannelEnabled="true",
                SMTPServer="127.0.0.1", SMTPPort=str(inbox.port), SMTPFrom="gateway@example.test",
                ChannelNotifyWebhook=hooks.url + "/hooks/channels", ServerAddress="https://gateway.example")
    set_root_email(app)
    (channel_id,) = add_channel(root, upstream.url, name="openai-main")
    key = add_token(root)["key"]
    upstream.by_key[UPSTREAM_KEY] = REFUSED_KEY

    assert relay(root, key).status_code == 502
    assert channel_status(app, channel_id) == 3
    settle(app, inbox, hooks, mails=1, posts=1)
    (mail,) = inbox.messages
    assert mail["to"] == [ROOT_EMAIL] and mail["from"] == "gateway@example.test"
    assert mail["message"]["From"].addresses[0].addr_spec == "gateway@example.test"
    assert "openai-main" in mail["message"]["Subject"] and "disabled" in mail["message"]["Subject"]
    assert "the upstream refused the key" in mail["body"] and "https://gateway.example/channel" in mail["body"]
    (post,) = hooks.requests
    assert post["method"] == "POST" and post["path"] == "/hooks/channels"
    payload = json.loads(post["body"])
    assert set(payload) == {"title", "description", "content", "channel_id", "status", "reason", "time"}
    assert payload["channel_id"] == channel_id and payload["status"] == 3
    assert "the upstream refused the key" in payload["reason"] and abs(payload["time"] - time.time()) < 60
    for text in (mail["body"], str(mail["message"]["Subject"]), post["body"].decode()):
        assert UPSTREAM_KEY not in text and upstream.url not in text and "sk-" not in text

    # Inside the window: re-enabled by the scheduled test, disabled again — nothing more is sent.
    upstream.by_key.clear()
    with app.app_context():
        assert scheduler.retest_disabled() == 1
    assert channel_status(app, channel_id) == 1
    upstream.by_key[UPSTREAM_KEY] = REFUSED_KEY
    assert relay(root, key).status_code == 502
    assert channel_status(app, channel_id) == 3
    settle(app, seconds=0.3)
    assert len(inbox.messages) == 1 and len(hooks.requests) == 1

    # Once the window has passed, the next change is sent, and mentions the two that were not.
    app.config["NOTIFY_WINDOW_SECONDS"] = 0
    upstream.by_key.clear()
    with app.app_context():
        scheduler.retest_disabled()
    settle(app, inbox, hooks, mails=2, posts=2)
    assert len(inbox.messages) == 2 and len(hooks.requests) == 2
    assert "re-enabled" in inbox.messages[1]["message"]["Subject"]
    assert "2 earlier change(s)" in inbox.messages[1]["body"]
    assert json.loads(hooks.requests[1]["body"])["status"] == 1


def test_the_window_is_per_channel(app, root, upstream, receiver):
    app.config["EGRESS_ALLOW_PRIVATE"] = True
    hooks = receiver()
    set_options(root, AutomaticDisableChannelEnabled="true", ChannelNotifyWebhook=hooks.url)
    (a,) = add_channel(root, upstream.url, name="a", key="key-a")
    (b,) = add_channel(root, upstream.url, name="b", key="key-b")
    upstream.by_key.update({"key-a": REFUSED_KEY, "key-b": REFUSED_KEY})
    set_options(root, RetryTimes="1")
    key = add_token(root)["key"]
    assert relay(root, key).status_code == 502
    assert channel_status(app, a) == channel_status(app, b) == 3
    settle(app, hooks=hooks, posts=2)
    assert sorted(json.loads(r["body"])["channel_id"] for r in hooks.requests) == [a, b]


def test_message_pusher_gets_the_originals_shape(app, root, upstream, receiver):
    app.config["EGRESS_ALLOW_PRIVATE"] = True
    pusher = receiver()
    pusher.answer = (200, {"Content-Type": "application/json"}, b'{"success": true, "message": ""}')
    set_options(root, MessagePusherAddress=pusher.url + "/push/root", MessagePusherToken="pusher-token")
    (channel_id,) = add_channel(root, upstream.url, name="pushed")
    with app.app_context():
        assert health.set_status(channel_id, 3, "disabled automatically: the upstream account is out of credit",
                                 only_if=1)
    settle(app, hooks=pusher, posts=1)
    (post,) = pusher.requests
    payload = json.loads(post["body"])
    assert set(payload) == {"title", "description", "content", "token"}
    assert payload["token"] == "pusher-token" and "out of credit" in payload["description"]
    assert "pushed" in payload["title"]


def test_nothing_configured_sends_nothing_and_starts_no_thread(app, root, upstream):
    (channel_id,) = add_channel(root, upstream.url)
    with app.app_context():
        assert notify.channel_status_changed(channel_id, 3, "disabled automatically: test") is None


def test_failing_mail_and_webhooks_never_break_the_relay(app, root, upstream, receiver, caplog):
    """A closed SMTP port, a webhook that hangs then fails, and a pusher on a refused address."""
    slow = receiver()
    slow.delay, slow.answer = 2.0, (500, {}, b"nope")
    set_options(root, AutomaticDisableChannelEnabled="true", RetryTimes="1", SMTPServer="127.0.0.1",
                SMTPPort=str(free_port()), SMTPFrom="gateway@example.test", ChannelNotifyWebhook=slow.url + "/x",
                MessagePusherAddress="http://169.254.169.254/latest/meta-data/")
    set_root_email(app)
    app.config["EGRESS_ALLOW_PRIVATE"] = True
    (bad,) = add_channel(root, upstream.url, name="bad", key="key-bad", priority=10)
    (good,) = add_channel(root, upstream.url, name="good", key="key-good", priority=0)
    upstream.by_key["key-bad"] = REFUSED_KEY
    key = add_token(root)["key"]
    caplog.set_level(logging.WARNING, logger="oneapi.services.notify")
    started = time.monotonic()
    answer = relay(root, key)
    elapsed = time.monotonic() - started
    assert answer.status_code == 200 and answer.json["choices"][0]["message"]["content"]
    assert elapsed < 1.5  # the webhook takes 2 s: the request did not wait for it
    assert channel_status(app, bad) == 3 and channel_status(app, good) == 1
    notify.wait(app)
    assert len(slow.requests) == 1
    failures = [r.getMessage() for r in caplog.records if "notification failed" in r.getMessage()]
    assert len(failures) == 3, failures
    assert not any(slow.url in line or "169.254" in line for line in failures)  # URLs may carry secrets


def test_the_webhook_goes_through_the_egress_guard(app, root, upstream, receiver):
    hooks = receiver()
    set_options(root, ChannelNotifyWebhook=hooks.url)  # a loopback URL, EGRESS_ALLOW_PRIVATE off
    (channel_id,) = add_channel(root, upstream.url)
    with app.app_context():
        health.set_status(channel_id, 3, "disabled automatically: test")
    settle(app, seconds=0.3)
    assert hooks.requests == []


def test_mail_is_sent_over_verified_starttls_with_the_password(app, root, upstream, smtp, tmp_path, monkeypatch):
    ca_file, cert_file, key_file = make_certificate(tmp_path, ["127.0.0.1"])
    inbox = smtp(tls_context=server_tls(cert_file, key_file), require_starttls=True, with_auth=True)
    set_options(root, SMTPServer="127.0.0.1", SMTPPort=str(inbox.port), SMTPAccount="mailer",
                SMTPToken="smtp-secret", SystemName="Gateway")
    set_root_email(app)
    (channel_id,) = add_channel(root, upstream.url, name="tls")

    # An untrusted certificate: nothing is sent, and the password never leaves.
    with app.app_context():
        health.set_status(channel_id, 3, "disabled automatically: first")
    settle(app, seconds=0.3)
    assert inbox.messages == [] and inbox.logins == []

    monkeypatch.setattr(mail, "tls_context", lambda: ssl.create_default_context(cafile=ca_file))
    app.config["NOTIFY_WINDOW_SECONDS"] = 0
    with app.app_context():
        health.set_status(channel_id, 1, "re-enabled automatically: second")
    settle(app, inbox, mails=1)
    (sent,) = inbox.messages
    assert inbox.logins == [(b"mailer", b"smtp-secret")]
    assert sent["from"] == "mailer" and sent["to"] == [ROOT_EMAIL]  # SMTPFrom empty: the account
    assert sent["message"]["From"].addresses[0].display_name == "Gateway"


def test_no_password_in_clear_text_to_a_remote_server(app, smtp, monkeypatch):
    inbox = smtp(auth_require_tls=False, with_auth=True)  # offers no STARTTLS
    settings = {"SMTPServer": "127.0.0.1", "SMTPPort": str(inbox.port), "SMTPAccount": "mailer",
                "SMTPToken": "smtp-secret", "SMTPFrom": "", "SystemName": "One API"}
    with app.app_context():
        monkeypatch.setattr(mail, "_local", lambda host: False)  # pretend the server is elsewhere
        with pytest.raises(mail.MailError, match="clear text"):
            mail.send_email(settings, [ROOT_EMAIL], "s", "b")
        assert inbox.logins == [] and inbox.messages == []
        monkeypatch.setattr(mail, "_local", lambda host: True)  # on this machine it may
        mail.send_email(settings, [ROOT_EMAIL], "s", "b")
    assert inbox.logins == [(b"mailer", b"smtp-secret")] and len(inbox.messages) == 1


def test_port_465_uses_implicit_tls_with_a_verifying_context(app, monkeypatch):
    seen = {}

    class FakeSSL:
        def __init__(self, host, port, timeout, context):
            seen.update(host=host, port=port, context=context)
            raise ConnectionRefusedError

    monkeypatch.setattr(mail.smtplib, "SMTP_SSL", FakeSSL)
    settings = {"SMTPServer": "smtp.example.test", "SMTPPort": "465", "SMTPAccount": "a", "SMTPToken": "t",
                "SMTPFrom": "a@example.test", "SystemName": "One API"}
    with app.app_context(), pytest.raises(ConnectionRefusedError):
        mail.send_email(settings, [ROOT_EMAIL], "s", "b")
    assert seen["host"] == "smtp.example.test" and seen["port"] == 465
    assert seen["context"].verify_mode == ssl.CERT_REQUIRED and seen["context"].check_hostname


def test_a_channel_name_cannot_inject_mail_headers(app, root, upstream, smtp):
    inbox = smtp()
    set_options(root, SMTPServer="127.0.0.1", SMTPPort=str(inbox.port), SMTPFrom="gateway@example.test")
    set_root_email(app)
    (channel_id,) = add_channel(root, upstream.url, name="evil\r\nBcc: victim@example.test")
    with app.app_context():
        health.set_status(channel_id, 3, "disabled automatically: test\r\nX-Injected: yes")
    settle(app, inbox, mails=1)
    (mail,) = inbox.messages
    assert mail["to"] == [ROOT_EMAIL] and mail["message"]["Bcc"] is None and mail["message"]["X-Injected"] is None
