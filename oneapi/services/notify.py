"""Telling root when the system disables or re-enables a channel (issue: channel health).

health.set_status calls `channel_status_changed` after every automatic change. Each configured way is
used — email to every enabled root with an address (SMTP options), a JSON POST to ChannelNotifyWebhook,
and the original's Message Pusher (MessagePusherAddress) — in a background thread (a greenlet under
gunicorn's gevent workers), so the request whose failure disabled the channel never waits for a mail
server, and nothing a mail server or webhook does can fail it.

At most one notification per channel per NOTIFY_WINDOW_SECONDS: the original sent one mail per failed
request, hundreds in a bad minute (research/peers.md §3 #8). The window is kept per process; a
multi-worker or multi-node deployment may send one per process in a window (docs/channel-health.md).
Changes inside the window are counted and mentioned in the next notification.

Mail goes through services/mail.py (verified TLS). Webhooks and the pusher go through the egress guard
(services/egress.py).
"""

import logging
import re
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from oneapi.extensions import db
from oneapi.models import Channel, User
from oneapi.models.channel import CHANNEL_ENABLED
from oneapi.models.user import ROLE_ROOT, STATUS_ENABLED
from oneapi.services import egress, options
from oneapi.services.mail import MailError, send_email

log = logging.getLogger(__name__)

_KEYS = ("SystemName", "ServerAddress", "SMTPServer", "SMTPPort", "SMTPAccount", "SMTPFrom", "SMTPToken",
         "ChannelNotifyWebhook", "MessagePusherAddress", "MessagePusherToken")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
WEBHOOK_LIMITS = {"connect_timeout": 5.0, "read_timeout": 10.0, "total_timeout": 15.0, "max_bytes": 64 * 1024}


@dataclass
class Event:
    channel_id: int
    status: int
    reason: str
    time: int
    suppressed: int = 0  # changes of this channel inside the window before this one, not notified


class _State:
    def __init__(self):
        self.lock = threading.Lock()
        self.last = {}  # channel id -> monotonic time of its last notification
        self.suppressed = {}  # channel id -> changes not notified since
        self.threads = []


def _state(app):
    state = app.extensions.get("oneapi_notify")
    if state is None:
        state = app.extensions["oneapi_notify"] = _State()
    return state


def channel_status_changed(channel_id, status, reason):
    """Notify root of an automatic status change, in the background. Never raises; returns the thread or None."""
    try:
        app = current_app._get_current_object()
        snapshot = options.current()
        settings = {key: snapshot.get(key) for key in _KEYS}
        if not (settings["SMTPServer"] or settings["ChannelNotifyWebhook"] or settings["MessagePusherAddress"]):
            return None
        state = _state(app)
        now = time.monotonic()
        with state.lock:
            last = state.last.get(channel_id)
            if last is not None and now - last < float(app.config.get("NOTIFY_WINDOW_SECONDS", 600)):
                state.suppressed[channel_id] = state.suppressed.get(channel_id, 0) + 1
                log.info("channel %s: notification skipped (one was sent less than the window ago)", channel_id)
                return None
            state.last[channel_id] = now
            suppressed = state.suppressed.pop(channel_id, 0)
            state.threads = [thread for thread in state.threads if thread.is_alive()]
            event = Event(channel_id, status, reason, int(time.time()), suppressed)
            thread = threading.Thread(target=_deliver, args=(app, settings, event), daemon=True,
                                      name=f"oneapi-notify-{channel_id}")
            state.threads.append(thread)
        thread.start()
        return thread
    except Exception:
        log.exception("channel %s: the notification could not be scheduled", channel_id)
        return None


def wait(app, timeout=10.0):
    """Wait for this app's notifications in flight (tests, and a clean shutdown)."""
    deadline = time.monotonic() + timeout
    for thread in list(_state(app).threads):
        thread.join(max(0.0, deadline - time.monotonic()))


def _clean(text, limit):
    return _CONTROL.sub(" ", str(text or "")).strip()[:limit]


def compose(event, channel_name, settings):
    """(title, description, content) of a notification. Names no key and no upstream URL."""
    verb = "re-enabled" if event.status == CHANNEL_ENABLED else "disabled"
    name = _clean(channel_name, 80)
    label = f"#{event.channel_id}" + (f" \"{name}\"" if name else "")
    title = f"{_clean(settings.get('SystemName'), 40) or 'One API'}: channel {label} {verb}"
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(event.time))
    description = _clean(event.reason, 255)
    lines = [f"Channel {label} was {verb} automatically at {when}.", f"Reason: {description}"]
    if event.suppressed:
        lines.append(f"{event.suppressed} earlier change(s) of this channel were not notified (notification window).")
    address = _clean(settings.get("ServerAddress"), 200).rstrip("/")
    if address:
        lines.append(f"Channels: {address}/channel")
    return title, description, "\n".join(lines)


def _deliver(app, settings, event):
    with app.app_context():
        name, emails = "", []
        try:
            name = db.session.scalar(select(Channel.name).where(Channel.id == event.channel_id)) or ""
            emails = [email for email in db.session.scalars(
                select(User.email).where(User.role == ROLE_ROOT, User.status == STATUS_ENABLED, User.email != ""))
                if email]
        except Exception:
            log.exception("channel %s: could not read the recipients of its notification", event.channel_id)
        finally:
            db.session.remove()
        title, description, content = compose(event, name, settings)
        if settings["SMTPServer"] and emails:
            _attempt("email", event, send_email, settings, emails, title, content)
        if settings["ChannelNotifyWebhook"]:
            payload = {"title": title, "description": description, "content": content,
                       "channel_id": event.channel_id, "status": event.status, "reason": event.reason,
                       "time": event.time}
            _attempt("webhook", event, _post, settings["ChannelNotifyWebhook"], payload)
        if settings["MessagePusherAddress"]:
            payload = {"title": title, "description": description, "content": content,
                       "token": settings["MessagePusherToken"]}
            _attempt("message pusher", event, _post, settings["MessagePusherAddress"], payload, pusher=True)


def _attempt(way, event, function, *args, **kwargs):
    try:
        function(*args, **kwargs)
    except Exception as error:  # a notification must never take anything else down
        detail = str(error) if isinstance(error, _EXPLAINED) else type(error).__name__
        log.warning("channel %s: the %s notification failed: %s", event.channel_id, way, detail)


class NotifyError(Exception):
    pass


_EXPLAINED = (egress.EgressError, NotifyError, MailError, smtplib.SMTPException, ssl.SSLError)  # messages safe to log


def _post(url, payload, pusher=False):
    answer = egress.post_json(url, payload, **WEBHOOK_LIMITS)
    if not 200 <= answer.status < 300:
        raise NotifyError(f"it answered with status {answer.status}")
    if pusher:  # the Message Pusher answers {"success": bool, "message": str}
        try:
            reply = answer.json()
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or reply.get("success") is not True:
            message = reply.get("message") if isinstance(reply, dict) else "not JSON"
            raise NotifyError(f"it refused the message: {_clean(message, 200)}")
