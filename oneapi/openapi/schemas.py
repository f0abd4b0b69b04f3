"""Components of the OpenAPI document: the envelope, the objects the routes return, the JSON bodies they
accept, and the two ways to authenticate. Field names, types and limits are the routes' own."""

INT64 = {"type": "integer", "format": "int64"}
INT32 = {"type": "integer", "format": "int32"}
STRING = {"type": "string"}
BOOL = {"type": "boolean"}


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties, required=(), description=None):
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    return schema


def text(max_length=None, min_length=None, description=None, **extra):
    schema = {"type": "string", **extra}
    if max_length is not None:
        schema["maxLength"] = max_length
    if min_length is not None:
        schema["minLength"] = min_length
    if description:
        schema["description"] = description
    return schema


def integer(description=None, fmt="int64", **extra):
    schema = {"type": "integer", "format": fmt, **extra}
    if description:
        schema["description"] = description
    return schema


ROLE = integer("1 common user, 10 admin, 100 root", "int32", enum=[1, 10, 100])
USER_STATUS = integer("1 enabled, 2 disabled, 3 deleted", "int32", enum=[1, 2, 3])
TOKEN_STATUS = integer("1 enabled, 2 disabled, 3 expired, 4 exhausted", "int32", enum=[1, 2, 3, 4])
CHANNEL_STATUS = integer("1 enabled, 2 disabled by hand, 3 disabled by the system", "int32", enum=[1, 2, 3])
REDEMPTION_STATUS = integer("1 unused, 2 disabled, 3 used", "int32", enum=[1, 2, 3])

ENVELOPE = obj({
    "success": BOOL,
    "message": text(description="empty on success; what went wrong otherwise, naming the field at fault"),
    "data": {"description": "the result, of any type; absent when there is none"},
}, required=("success", "message"), description="Every /api answer: {success, message, data}.")

ERROR = obj({"success": {"type": "boolean", "enum": [False]}, "message": STRING},
            required=("success", "message"), description="A refusal, in the envelope.")

USER = obj({
    "id": INT32, "username": STRING,
    "password": text(description="always empty: password hashes never leave the server"),
    "display_name": STRING, "role": ROLE, "status": USER_STATUS, "email": STRING, "github_id": STRING,
    "wechat_id": STRING, "lark_id": STRING, "oidc_id": STRING, "verification_code": text(description="always empty"),
    "access_token": text(description="always empty: access tokens are shown once, by POST /api/user/token"),
    "quota": INT64, "used_quota": INT64, "request_count": INT32, "group": STRING,
    "aff_code": text(description="the user's invitation code, empty until GET /api/user/aff makes one"),
    "inviter_id": INT32,
})

LOGIN_RESULT = obj({"id": INT32, "username": STRING, "display_name": STRING, "role": ROLE, "status": USER_STATUS})

TOKEN = obj({
    "id": INT32, "user_id": INT32,
    "key": text(description="`sk-` and the full 48-character key in the response that creates or renews it; "
                            "otherwise masked (`abcd********wxyz`)"),
    "status": TOKEN_STATUS, "name": STRING, "created_time": INT64, "accessed_time": INT64,
    "expired_time": integer("unix seconds, or -1 for never"), "remain_quota": INT64, "unlimited_quota": BOOL,
    "remain_times": integer("uses left, or -1 for unlimited (ours)"), "used_quota": INT64,
    "rpm_limit": integer("requests per minute allowed on /v1, 0 for no limit (ours)"),
    "models": text(description="comma-separated allow-list; empty allows every model"),
    "subnet": text(description="comma-separated CIDR allow-list; empty allows every address"),
})

CHANNEL = obj({
    "id": INT32, "type": integer("channel type (1 OpenAI, 3 Azure, 14 Anthropic, ...)", "int32"),
    "key": text(description="always empty: channel keys never leave the server"),
    "status": CHANNEL_STATUS,
    "status_reason": text(description="why the status last changed: the failure that disabled it, or who "
                                      "changed it (ours)"),
    "status_time": integer("unix seconds of the last status change, 0 if none (ours)"),
    "name": STRING, "weight": INT32, "created_time": INT64, "test_time": INT64,
    "response_time": integer("milliseconds, from the last test", "int32"), "base_url": STRING, "other": STRING,
    "balance": {"type": "number"}, "balance_updated_time": INT64, "models": STRING, "group": STRING,
    "used_quota": INT64, "model_mapping": STRING, "priority": INT64, "config": STRING, "system_prompt": STRING,
})

REDEMPTION = obj({
    "id": INT32, "user_id": integer("the admin who created it", "int32"), "key": text(description="the code"),
    "status": REDEMPTION_STATUS, "name": STRING, "quota": INT64, "created_time": INT64, "redeemed_time": INT64,
    "redeemed_by": integer("the user who redeemed it (ours)", "int32"),
})

LOG = obj({
    "id": integer("absent from the caller's own logs", "int32"), "user_id": INT32, "created_at": INT64,
    "type": integer("1 top-up, 2 consume, 3 manage, 4 system, 5 test", "int32"), "content": STRING,
    "username": STRING, "token_name": STRING, "model_name": STRING, "quota": INT64, "prompt_tokens": INT32,
    "completion_tokens": INT32, "channel": INT32, "request_id": STRING,
    "elapsed_time": integer("milliseconds", "int32"), "is_stream": BOOL, "system_prompt_reset": BOOL,
    "token_id": INT32, "outcome": text(description="done, client_gone, upstream_error or timeout"),
    "usage_estimated": BOOL,
})

OPTION = obj({"key": STRING, "value": STRING}, required=("key", "value"))

DASHBOARD_ROW = obj({"Day": text(description="YYYY-MM-DD (UTC)"), "ModelName": STRING, "RequestCount": INT64,
                     "Quota": INT64, "PromptTokens": INT64, "CompletionTokens": INT64},
                    description="The original's PascalCase keys.")

STATUS = obj({
    "version": STRING, "start_time": INT64, "email_verification": BOOL, "github_oauth": BOOL,
    "github_client_id": STRING, "lark_client_id": STRING, "system_name": STRING, "logo": STRING,
    "footer_html": STRING, "wechat_qrcode": STRING, "wechat_login": BOOL, "server_address": STRING,
    "turnstile_check": BOOL, "turnstile_site_key": STRING, "top_up_link": STRING, "chat_link": STRING,
    "quota_per_unit": INT64, "display_in_currency": BOOL, "oidc": BOOL, "oidc_client_id": STRING,
    "oidc_well_known": STRING, "oidc_authorization_endpoint": STRING, "oidc_token_endpoint": STRING,
    "oidc_userinfo_endpoint": STRING,
})

CHANNEL_TEST_RESULT = obj({"success": BOOL, "message": text(description="the model's reply, or the error"),
                           "time": {"type": "number", "description": "seconds"}, "modelName": STRING},
                          required=("success", "message"),
                          description="The original's non-standard shape (not the envelope).")

BALANCE_RESULT = obj({"success": BOOL, "message": STRING, "balance": {"type": "number", "description": "USD"}},
                     required=("success", "message"), description="The original's non-standard shape.")

MODEL_LIST = obj({"object": {"type": "string", "enum": ["list"]},
                  "data": {"type": "array", "items": obj({"id": STRING, "object": STRING, "created": INT64,
                                                          "owned_by": STRING})}},
                 required=("object", "data"), description="The original's non-standard shape: OpenAI's model list.")

# ---- request bodies. Unknown fields are ignored; a field of the wrong type is refused, by name. ----------

PASSWORD = text(64, 8, "8 to 64 characters (at most 72 bytes in UTF-8); never `123456`")

REGISTER_BODY = obj({
    "username": text(12), "password": text(description="8 to 64 characters"),
    "email": text(50, description="required with EmailVerificationEnabled, else ignored"),
    "verification_code": text(description="the code mailed to `email`"),
    "aff_code": text(description="the inviter's invitation code"),
}, required=("username", "password"))
RESET_BODY = obj({"email": STRING, "token": STRING}, required=("email", "token"))
BIND_EMAIL_BODY = obj({"email": STRING, "code": STRING}, required=("email", "code"))
LOGIN_BODY = obj({"username": text(description="the username, or the email address"), "password": STRING},
                 required=("username", "password"))

SELF_UPDATE_BODY = obj({"username": text(12, 1), "display_name": text(20), "password": PASSWORD},
                       description="Only these three change; anything else in the body is ignored.")

USER_CREATE_BODY = obj({
    "username": text(12, 1, "not starting with `deleted_`"), "password": PASSWORD, "display_name": text(20),
    "role": integer("checked (must be below the caller's role, root exempt) and then ignored, as in the "
                    "original: new users are common users", "int32"),
}, required=("username", "password"))

USER_UPDATE_BODY = obj({
    "id": INT32, "username": text(12, 1), "display_name": text(20),
    "password": {**PASSWORD, "description": "empty keeps the current password"}, "email": text(50),
    "group": text(32, 1), "role": integer("only root changes roles", "int32", enum=[1, 10]),
    "status": integer("1 enabled, 2 disabled", "int32", enum=[1, 2]),
    "quota": integer("the new balance; the change is logged", minimum=0),
}, required=("id",), description="Fields left out are not changed; unknown fields are ignored.")

USER_MANAGE_BODY = obj({"username": STRING, "action": text(enum=["disable", "enable", "delete", "promote", "demote"])},
                       required=("username", "action"))

TOKEN_FIELDS = {
    "name": text(30), "expired_time": integer("unix seconds, or -1 for never"),
    "remain_quota": integer(minimum=0), "unlimited_quota": BOOL,
    "remain_times": integer("how many requests the token may make, or -1 for unlimited (ours)", minimum=-1),
    "rpm_limit": integer("requests per minute allowed on /v1, 0 for no limit (ours)", minimum=0, maximum=1_000_000),
    "models": text(description="comma-separated model allow-list; empty allows every model"),
    "subnet": text(description="comma-separated CIDRs, e.g. `10.0.0.0/8,192.168.1.0/24`"),
}
TOKEN_CREATE_BODY = obj(TOKEN_FIELDS, description="The key is generated by the server.")
TOKEN_UPDATE_BODY = obj({"id": INT32, **TOKEN_FIELDS, "status": TOKEN_STATUS}, required=("id",),
                        description="With `status_only`, only `status` changes. `user_id`, `key` and usage "
                                    "counters cannot be set.")

CHANNEL_FIELDS = {
    "type": integer("channel type; 1 (OpenAI) when left out", "int32"), "name": text(191),
    "base_url": text(description="http:// or https:// URL; empty for the type's default"),
    "other": STRING, "models": text(description="comma-separated"),
    "group": text(description="comma-separated groups of at most 32 characters each; `default` when left out"),
    "model_mapping": text(description="a JSON object as a string: requested model → upstream model"),
    "config": text(description="a JSON object as a string (region, api_version, proxy, ...)"),
    "system_prompt": STRING, "priority": INT64, "weight": integer(fmt="int32", minimum=0), "status": CHANNEL_STATUS,
}
CHANNEL_CREATE_BODY = obj({"key": text(description="one key per line: each non-empty line makes one channel"),
                           **CHANNEL_FIELDS}, required=("key",))
CHANNEL_UPDATE_BODY = obj({"id": INT32, "key": text(description="empty keeps the current key"), **CHANNEL_FIELDS},
                          required=("id",), description="Fields left out are not changed.")

REDEMPTION_CREATE_BODY = obj({"name": text(20, 1), "count": integer(fmt="int32", minimum=1, maximum=100, default=1),
                              "quota": integer(minimum=1, default=100)}, required=("name",))
REDEMPTION_UPDATE_BODY = obj({"id": INT32, "name": text(20, 1), "quota": integer(minimum=1),
                              "status": integer("1 enabled, 2 disabled", "int32", enum=[1, 2])}, required=("id",),
                             description="With `status_only`, only `status` changes.")

OPTION_BODY = obj({"key": text(191, 1), "value": {
    "oneOf": [STRING, BOOL, {"type": "number"}],
    "description": "stored as a string; booleans become \"true\"/\"false\""}}, required=("key",))

TOP_UP_BODY = obj({"user_id": INT32, "quota": integer(minimum=1),
                   "remark": text(description="defaults to `top-up through the API: <quota>`")},
                  required=("user_id", "quota"))

REDEEM_BODY = obj({"key": text(description="the redemption code")}, required=("key",))


def components():
    schemas = {
        "Envelope": ENVELOPE, "Error": ERROR, "User": USER, "LoginResult": LOGIN_RESULT, "Token": TOKEN,
        "Channel": CHANNEL, "Redemption": REDEMPTION, "Log": LOG, "Option": OPTION, "DashboardRow": DASHBOARD_ROW,
        "Status": STATUS, "ChannelTestResult": CHANNEL_TEST_RESULT, "BalanceResult": BALANCE_RESULT,
        "ModelList": MODEL_LIST, "LoginBody": LOGIN_BODY, "RegisterBody": REGISTER_BODY, "ResetBody": RESET_BODY,
        "BindEmailBody": BIND_EMAIL_BODY, "SelfUpdateBody": SELF_UPDATE_BODY,
        "UserCreateBody": USER_CREATE_BODY, "UserUpdateBody": USER_UPDATE_BODY, "UserManageBody": USER_MANAGE_BODY,
        "TokenCreateBody": TOKEN_CREATE_BODY, "TokenUpdateBody": TOKEN_UPDATE_BODY,
        "ChannelCreateBody": CHANNEL_CREATE_BODY, "ChannelUpdateBody": CHANNEL_UPDATE_BODY,
        "RedemptionCreateBody": REDEMPTION_CREATE_BODY, "RedemptionUpdateBody": REDEMPTION_UPDATE_BODY,
        "OptionBody": OPTION_BODY, "TopUpBody": TOP_UP_BODY, "RedeemBody": REDEEM_BODY,
    }
    return {
        "schemas": schemas,
        "securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": "session",
                        "description": "The cookie set by POST /api/user/login."},
            "accessToken": {"type": "apiKey", "in": "header", "name": "Authorization",
                            "description": "`Authorization: <access token>` (a `Bearer ` prefix is accepted). "
                                           "POST /api/user/token makes one and shows it once."},
        },
    }
