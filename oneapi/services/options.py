"""Site options (spec §7): defaults, overridden by `options` rows, cached, changed through `update`."""

import json

from sqlalchemy import select

from oneapi.extensions import db
from oneapi.models import Option
from oneapi.services import cache

DEFAULTS = {
    "SystemName": "One API",
    "Logo": "",
    "Footer": "",
    "HomePageContent": "",
    "About": "",
    "Notice": "",
    "ServerAddress": "",
    "TopUpLink": "",
    "ChatLink": "",
    "Theme": "default",
    "PasswordLoginEnabled": "true",
    "PasswordRegisterEnabled": "true",
    "RegisterEnabled": "true",
    "EmailVerificationEnabled": "false",
    "EmailDomainRestrictionEnabled": "false",
    "EmailDomainWhitelist": "gmail.com,163.com,126.com,qq.com,outlook.com,hotmail.com,icloud.com,yahoo.com,foxmail.com",
    "GitHubOAuthEnabled": "false",
    "GitHubClientId": "",
    "GitHubClientSecret": "",
    "OidcEnabled": "false",
    "OidcClientId": "",
    "OidcClientSecret": "",
    "OidcWellKnown": "",
    "OidcAuthorizationEndpoint": "",
    "OidcTokenEndpoint": "",
    "OidcUserinfoEndpoint": "",
    "LarkClientId": "",
    "LarkClientSecret": "",
    "WeChatAuthEnabled": "false",
    "WeChatServerAddress": "",
    "WeChatServerToken": "",
    "WeChatAccountQRCodeImageURL": "",
    "TurnstileCheckEnabled": "false",
    "TurnstileSiteKey": "",
    "TurnstileSecretKey": "",
    "SMTPServer": "",
    "SMTPPort": "587",
    "SMTPAccount": "",
    "SMTPFrom": "",
    "SMTPToken": "",
    "MessagePusherAddress": "",
    "MessagePusherToken": "",
    "ChannelNotifyWebhook": "",  # ours: POST JSON here when a channel is disabled or re-enabled automatically
    "QuotaForNewUser": "0",
    "QuotaForInviter": "0",
    "QuotaForInvitee": "0",
    "QuotaRemindThreshold": "1000",
    "PreConsumedQuota": "500",
    "QuotaPerUnit": "500000",
    "DisplayInCurrencyEnabled": "true",
    "DisplayTokenStatEnabled": "true",
    "LogConsumeEnabled": "true",
    "ApproximateTokenEnabled": "false",
    "ModelRatio": "",  # empty: the built-in table (services/ratios.py); a saved map is merged over it
    "CompletionRatio": "",
    "GroupRatio": json.dumps({"default": 1, "vip": 1, "svip": 1}),
    "RetryTimes": "0",
    "ChannelDisableThreshold": "5",
    "AutomaticDisableChannelEnabled": "false",
    "AutomaticEnableChannelEnabled": "false",
}


class Snapshot:
    """One consistent view of every option, with parsed JSON values memoised."""

    def __init__(self, values):
        self.values = values
        self._parsed = {}

    def get(self, key):
        return self.values.get(key, "")

    def bool(self, key):
        return self.values.get(key) == "true"

    def int(self, key):
        try:
            return int(float(self.values.get(key) or 0))
        except ValueError:
            return int(float(DEFAULTS.get(key) or 0))

    def float(self, key):
        try:
            return float(self.values.get(key) or 0)
        except ValueError:
            return float(DEFAULTS.get(key) or 0)

    def json(self, key):
        if key not in self._parsed:
            try:
                value = json.loads(self.values.get(key) or "{}")
            except ValueError:
                value = {}
            self._parsed[key] = value if isinstance(value, dict) else {}
        return self._parsed[key]


def _load():
    values = dict(DEFAULTS)
    values.update({row.key: row.value for row in db.session.scalars(select(Option))})
    return Snapshot(values)


def current():
    return cache.get("options", _load)


def update(key, value):
    """Save one option and apply it on every node. The caller validates."""
    row = db.session.get(Option, key)
    if row is None:
        db.session.add(Option(key=key, value=value))
    else:
        row.value = value
    cache.publish("options")
    db.session.commit()
