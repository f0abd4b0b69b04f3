"""What every page shows: the site's name, logo, footer and notice, the navigation, and the filters that
format quota and times. Admin-supplied Markdown and HTML go through a real sanitiser (nh3)."""

import hashlib
import time
from functools import lru_cache, wraps

import markdown
import nh3
from flask import abort, redirect, request, url_for
from flask_login import current_user, logout_user
from markupsafe import Markup

from oneapi.models.user import ROLE_ADMIN, ROLE_COMMON, ROLE_ROOT, STATUS_ENABLED
from oneapi.services import options
from oneapi.web import bp


@lru_cache(maxsize=64)
def sanitised_markdown(text):
    """Markdown (raw HTML inside it allowed) → HTML with scripts, handlers and unsafe URLs removed."""
    return Markup(nh3.clean(markdown.markdown(text, extensions=["tables", "fenced_code"])))


def is_url(text):
    text = (text or "").strip()
    return text.startswith(("https://", "http://")) and not any(c.isspace() for c in text)


def rich(text):
    """(kind, value) for HomePageContent and About: ("url", url) for an iframe, ("html", Markup), or None."""
    text = (text or "").strip()
    if not text:
        return None
    if is_url(text):
        return "url", text
    return "html", sanitised_markdown(text)


def safe_image_url(url):
    url = (url or "").strip()
    return url if url.startswith(("https://", "http://", "/")) and not url.startswith("//") else ""


def display_quota(quota, o=None):
    o = o or options.current()
    if o.bool("DisplayInCurrencyEnabled"):
        amount = quota / (o.float("QuotaPerUnit") or 500000)
        digits = 4 if abs(amount) >= 0.01 else 8  # one request can cost millionths of a dollar
        return f"${amount:,.{digits}f}".rstrip("0").rstrip(".") if quota else "$0"
    return f"{quota:,}"


@bp.app_template_filter("quota")
def _quota_filter(quota):
    return display_quota(int(quota or 0))


@bp.app_template_filter("when")
def _when(ts):
    """A <time> in UTC; the page's script shows it in the reader's time zone."""
    if not ts or ts < 0:
        return "—"
    return Markup('<time datetime="{}" data-ts="{}">{} UTC</time>').format(
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)), int(ts), time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts)))


@bp.app_context_processor
def _site():
    o = options.current()
    notice = (o.get("Notice") or "").strip()
    return {
        "site": {
            "name": o.get("SystemName") or "One API",
            "logo": safe_image_url(o.get("Logo")),
            "footer": Markup(nh3.clean(o.get("Footer"))) if o.get("Footer") else "",
            "notice": sanitised_markdown(notice) if notice else "",
            "notice_id": hashlib.sha256(notice.encode()).hexdigest()[:12],
            "chat_link": o.get("ChatLink") if is_url(o.get("ChatLink")) else "",
            "currency": o.bool("DisplayInCurrencyEnabled"), "quota_per_unit": o.float("QuotaPerUnit") or 500000,
        },
        "ROLE_ADMIN": ROLE_ADMIN, "ROLE_ROOT": ROLE_ROOT,
    }


def page_role(role=ROLE_COMMON):
    """A page for signed-in, enabled users of at least `role`; the role is re-read on every request."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return redirect(url_for("auth.login_page", next=request.full_path))
            if current_user.status != STATUS_ENABLED:
                logout_user()
                return redirect(url_for("auth.login_page"))
            if current_user.role < role:
                abort(403, "You do not have permission to see this page.")
            return view(*args, **kwargs)

        return wrapped

    return decorator


def page_number():
    try:
        return max(int(request.args.get("p", 0)), 0)
    except ValueError:
        return 0
