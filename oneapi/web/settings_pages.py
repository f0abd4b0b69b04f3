"""Root's site settings: every option, grouped as the original's operation / system / other tabs, saved
one key at a time through PUT /api/option/ so its validation messages show next to the form."""

from flask import abort, render_template

from oneapi.models.user import ROLE_ROOT
from oneapi.options.routes import is_secret
from oneapi.services import options
from oneapi.web import bp
from oneapi.web.site import page_role

# (tab, section, [keys]); a key's kind comes from its name: *Enabled is a switch, ratios are JSON.
GROUPS = [
    ("operation", "Quota", ["QuotaForNewUser", "QuotaForInviter", "QuotaForInvitee", "PreConsumedQuota",
                            "QuotaRemindThreshold", "QuotaPerUnit", "TopUpLink", "ChatLink"]),
    ("operation", "Display and logging", ["DisplayInCurrencyEnabled", "DisplayTokenStatEnabled",
                                          "LogConsumeEnabled", "ApproximateTokenEnabled"]),
    ("operation", "Channels", ["RetryTimes", "ChannelDisableThreshold", "AutomaticDisableChannelEnabled",
                               "AutomaticEnableChannelEnabled"]),
    ("operation", "Ratios", ["ModelRatio", "CompletionRatio", "GroupRatio"]),
    ("system", "General", ["ServerAddress"]),
    ("system", "Login and registration", ["PasswordLoginEnabled", "PasswordRegisterEnabled", "RegisterEnabled",
                                          "EmailVerificationEnabled", "EmailDomainRestrictionEnabled",
                                          "EmailDomainWhitelist"]),
    ("system", "SMTP", ["SMTPServer", "SMTPPort", "SMTPAccount", "SMTPFrom", "SMTPToken"]),
    ("system", "GitHub OAuth", ["GitHubOAuthEnabled", "GitHubClientId", "GitHubClientSecret"]),
    ("system", "WeChat", ["WeChatAuthEnabled", "WeChatServerAddress", "WeChatServerToken",
                          "WeChatAccountQRCodeImageURL"]),
    ("system", "Turnstile", ["TurnstileCheckEnabled", "TurnstileSiteKey", "TurnstileSecretKey"]),
    ("system", "OpenID Connect", ["OidcEnabled", "OidcClientId", "OidcClientSecret", "OidcWellKnown",
                                  "OidcAuthorizationEndpoint", "OidcTokenEndpoint", "OidcUserinfoEndpoint"]),
    ("system", "Lark", ["LarkClientId", "LarkClientSecret"]),
    ("system", "Notifications", ["ChannelNotifyWebhook", "MessagePusherAddress", "MessagePusherToken"]),
    ("other", "Site", ["SystemName", "Logo", "Footer", "Notice"]),
    ("other", "Pages", ["HomePageContent", "About"]),
]
TABS = {"operation": "Operation", "system": "System", "other": "Other"}
HELP = {
    "QuotaForNewUser": "Quota given to each new user (500,000 = $1).",
    "QuotaForInviter": "Quota given to the inviter when someone registers with their link.",
    "QuotaForInvitee": "Quota given to a user who registers with an invitation link.",
    "PreConsumedQuota": "Added to every request's reservation before the upstream answers.",
    "QuotaRemindThreshold": "Email a user whose quota falls below this.",
    "QuotaPerUnit": "Quota per US dollar, for display.",
    "TopUpLink": "Payment site opened from the top-up page.",
    "ChatLink": "A chat web UI shown in the menu.",
    "RetryTimes": "How many other channels to try when one fails before answering.",
    "ChannelDisableThreshold": "Seconds: a channel test slower than this counts as a failure.",
    "ModelRatio": "JSON: model → price ratio, merged over the built-in table.",
    "CompletionRatio": "JSON: model → output/input price ratio.",
    "GroupRatio": "JSON: group → multiplier. Its keys are the user groups.",
    "ServerAddress": "Public base URL, used in emails and OAuth redirects.",
    "EmailDomainWhitelist": "Comma-separated domains allowed to register when the restriction is on.",
    "OidcWellKnown": "The discovery document (…/.well-known/openid-configuration); the endpoints below may then stay "
                     "empty. Callback: {ServerAddress}/oauth/oidc.",
    "LarkClientId": "Lark/Feishu login is on whenever this is set. Callback: {ServerAddress}/oauth/lark.",
    "GitHubClientId": "Callback: {ServerAddress}/oauth/github.",
    "ChannelNotifyWebhook": "POST JSON here when the system disables or re-enables a channel.",
    "SystemName": "Shown in the header, titles and emails.",
    "Logo": "URL of the logo image.",
    "Footer": "HTML shown at the bottom of every page (sanitised).",
    "Notice": "Markdown shown as a dismissable banner on every page.",
    "HomePageContent": "Markdown or HTML for the home page, or a URL to show in a frame.",
    "About": "Markdown or HTML for the about page, or a URL to show in a frame.",
}
_LONG = {"ModelRatio", "CompletionRatio", "GroupRatio", "Footer", "Notice", "HomePageContent", "About",
         "EmailDomainWhitelist"}
_SECRET_LIKE = {"TurnstileSecretKey"}  # the API shows it (spec quirk); the page treats it as a secret anyway


def kind(key):
    if key.endswith("Enabled"):
        return "bool"
    if key in _LONG:
        return "long"
    if is_secret(key) or key in _SECRET_LIKE:
        return "secret"
    return "text"


@bp.get("/setting/<tab>")
@page_role(ROLE_ROOT)
def site_settings(tab):
    if tab not in TABS:
        abort(404, "No such settings page.")
    values = options.current().values
    sections = [(title, [{"key": k, "kind": kind(k), "help": HELP.get(k, ""),
                          "value": "" if kind(k) == "secret" else values.get(k, "")}
                         for k in keys]) for t, title, keys in GROUPS if t == tab]
    return render_template("admin/options.html", tab=tab, tabs=TABS, sections=sections)
