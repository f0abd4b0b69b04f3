"""Public status and site texts, and the root-only option editor (spec §1.3, §7)."""

import json
import time

from flask import current_app

from oneapi.auth.guards import require_role
from oneapi.envelope import ApiError, field, json_object, ok
from oneapi.models.user import ROLE_ROOT
from oneapi.options import bp
from oneapi.services import options

START_TIME = int(time.time())
_SECRET_SUFFIXES = ("Token", "Secret", "SecretKey")
_RATIO_KEYS = ("ModelRatio", "CompletionRatio", "GroupRatio")
_OIDC_ENDPOINTS = ("OidcAuthorizationEndpoint", "OidcTokenEndpoint", "OidcUserinfoEndpoint")
_URL_KEYS = ("OidcWellKnown", *_OIDC_ENDPOINTS, "WeChatServerAddress")
_PREREQUISITES = {
    "GitHubOAuthEnabled": "GitHubClientId",
    "OidcEnabled": "OidcClientId",
    "EmailDomainRestrictionEnabled": "EmailDomainWhitelist",
    "WeChatAuthEnabled": "WeChatServerAddress",
    "TurnstileCheckEnabled": "TurnstileSiteKey",
}


@bp.get("/api/status")
def status():
    o = options.current()
    return ok({
        "version": current_app.config["VERSION"], "start_time": START_TIME,
        "email_verification": o.bool("EmailVerificationEnabled"), "github_oauth": o.bool("GitHubOAuthEnabled"),
        "github_client_id": o.get("GitHubClientId"), "lark_client_id": o.get("LarkClientId"),
        "system_name": o.get("SystemName"), "logo": o.get("Logo"), "footer_html": o.get("Footer"),
        "wechat_qrcode": o.get("WeChatAccountQRCodeImageURL"), "wechat_login": o.bool("WeChatAuthEnabled"),
        "server_address": o.get("ServerAddress"), "turnstile_check": o.bool("TurnstileCheckEnabled"),
        "turnstile_site_key": o.get("TurnstileSiteKey"), "top_up_link": o.get("TopUpLink"),
        "chat_link": o.get("ChatLink"), "quota_per_unit": o.int("QuotaPerUnit"),
        "display_in_currency": o.bool("DisplayInCurrencyEnabled"), "oidc": o.bool("OidcEnabled"),
        "oidc_client_id": o.get("OidcClientId"), "oidc_well_known": o.get("OidcWellKnown"),
        "oidc_authorization_endpoint": o.get("OidcAuthorizationEndpoint"),
        "oidc_token_endpoint": o.get("OidcTokenEndpoint"), "oidc_userinfo_endpoint": o.get("OidcUserinfoEndpoint"),
    })


@bp.get("/api/notice")
def notice():
    return ok(options.current().get("Notice"))


@bp.get("/api/about")
def about():
    return ok(options.current().get("About"))


@bp.get("/api/home_page_content")
def home_page_content():
    return ok(options.current().get("HomePageContent"))


def is_secret(key):
    """Secrets are never sent back; internal keys (a leading "_") are not options an admin sets."""
    return key.endswith(_SECRET_SUFFIXES) or key.startswith("_")


@bp.get("/api/option/")
@require_role(ROLE_ROOT)
def list_options():
    values = options.current().values
    return ok([{"key": k, "value": v} for k, v in sorted(values.items()) if not is_secret(k)])


def _validate(key, value):
    if key.startswith("_"):
        raise ApiError("keys starting with _ are internal")
    if key in _RATIO_KEYS and value:
        try:
            table = json.loads(value)
        except ValueError:
            raise ApiError(f"{key} must be a JSON object of names to numbers") from None
        if not isinstance(table, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in table.values()):
            raise ApiError(f"{key} must be a JSON object of names to non-negative numbers")
    if key.endswith("Enabled") and value not in ("true", "false"):
        raise ApiError(f"{key} must be \"true\" or \"false\"")
    if key in _PREREQUISITES and value == "true" and not options.current().get(_PREREQUISITES[key]):
        raise ApiError(f"set {_PREREQUISITES[key]} before turning on {key}")
    if key in _URL_KEYS and value and not value.startswith(("https://", "http://")):
        raise ApiError(f"{key} must be an http:// or https:// URL")
    if key == "OidcEnabled" and value == "true" and not options.current().get("OidcWellKnown") and not all(
            options.current().get(k) for k in _OIDC_ENDPOINTS):
        raise ApiError("set OidcWellKnown, or all three OIDC endpoints, before turning on OidcEnabled")
    if key == "Theme" and value not in ("default", "berry", "air"):
        raise ApiError("Theme must be default, berry or air")


@bp.put("/api/option/")
@require_role(ROLE_ROOT)
def update_option():
    body = json_object()
    key = field(body, "key", str, required=True)
    value = body.get("value", "")
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, (int, float)):
        value = str(value)
    elif not isinstance(value, str):
        raise ApiError("value must be a string")
    if not key or len(key) > 191:
        raise ApiError("key must be 1 to 191 characters")
    _validate(key, value)
    options.update(key, value)
    return ok()
