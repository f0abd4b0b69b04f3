"""The OpenAPI 3.0 document of /api, as a Python dict. tests/test_openapi.py checks it against app.url_map,
so a route added without a line here fails the suite."""

from oneapi.openapi import schemas as s

# Who may call an operation; `x-role` in the document carries it for people and for the authorization tests.
PUBLIC, USER, ADMIN, ROOT = "public", "user", "admin", "root"
_MIN_ROLE = {USER: 1, ADMIN: 10, ROOT: 100}

DESCRIPTION = """\
The management API of One API (Python), compatible with songquanpeng/one-api.

Every answer is the envelope `{"success": bool, "message": string, "data": any}`. Business refusals keep the
original's HTTP 200 with `success: false`; a request that is malformed (body not a JSON object, non-integer
query numbers) is 400; no session and no access token is 401; a disabled user, a role too low, or a target
user whose role is not below the caller's is 403; a missing row is 404. A few routes keep the original's
non-standard shapes; they say so.

While root still has the default password `123456`, every route except GET /api/status, POST /api/user/login,
GET /api/user/logout and GET/PUT /api/user/self answers 403 until it is changed.

Lists take `p` (0-based page) and `page_size` (default 10, at most 100) and answer a bare array, `id` descending.
Searches match `keyword` as a prefix (LIKE wildcards in it are matched literally) and answer at most 100 rows.
"""

TAGS = [
    {"name": "public", "description": "status and site texts"},
    {"name": "account", "description": "logging in and the caller's own account"},
    {"name": "users", "description": "managing users (admin; root for admins)"},
    {"name": "tokens", "description": "the caller's API keys"},
    {"name": "channels", "description": "upstream channels (admin)"},
    {"name": "redemptions", "description": "redemption codes and top-ups"},
    {"name": "logs", "description": "request, top-up and management logs"},
    {"name": "options", "description": "site options (root)"},
]


def _json(schema):
    return {"application/json": {"schema": schema}}


def envelope(data=None):
    if data is None:
        return s.ref("Envelope")
    return {"allOf": [s.ref("Envelope"), {"type": "object", "properties": {"data": data}}]}


def array(item):
    return {"type": "array", "items": item}


def query(name, schema, description, required=False):
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def path_id(name, what):
    return {"name": name, "in": "path", "required": True, "description": f"the {what}'s id",
            "schema": {"type": "integer", "format": "int32", "minimum": 0}, "example": 1}


P = query("p", s.INT32, "0-based page index; negative values count as 0")
PAGE_SIZE = query("page_size", {"type": "integer", "format": "int32", "default": 10},
                  "rows per page, 1 to 100 (ours; the original always uses 10)")
KEYWORD = query("keyword", s.STRING, "prefix to match; % and _ are matched literally")
STATUS_ONLY = query("status_only", s.STRING, "when non-empty, only `status` changes")
START = query("start_timestamp", s.INT64, "unix seconds; 0 or empty: no lower bound")
END = query("end_timestamp", s.INT64, "unix seconds; 0 or empty: no upper bound")
LOG_TYPE = query("type", s.INT32, "1 top-up, 2 consume, 3 manage, 4 system, 5 test; 0 or empty: every type")
USERNAME = query("username", s.STRING, "exact username")
TOKEN_NAME = query("token_name", s.STRING, "exact token name")
MODEL_NAME = query("model_name", s.STRING, "exact model name")
CHANNEL = query("channel", s.INT32, "channel id; 0 or empty: every channel")
OAUTH_CODE = query("code", s.STRING, "the authorization code the provider sent back", required=True)
OAUTH_STATE = query("state", s.STRING, "the state from GET /api/oauth/state, in this session", required=True)
WECHAT_CODE = query("code", s.STRING, "the verification code the WeChat official account answered with",
                    required=True)
TURNSTILE = query("turnstile", s.STRING, "the Turnstile token, when TurnstileCheckEnabled and this session "
                                        "has not passed yet")
EMAIL = query("email", s.STRING, "the address", required=True)
VERIFICATION_CODE = query("code", s.STRING, "the code mailed by GET /api/verification", required=True)
WECHAT_STATE = query("state", s.STRING, "the state from GET /api/oauth/state; needed unless the request has "
                                        "an X-Requested-With or Authorization header")

_ERRORS = {
    "400": "malformed request: the body is not a JSON object, or a query number is not an integer",
    "401": "no session and no access token",
    "403": "disabled user, role too low, target user not below the caller, or root's default password unchanged",
    "404": "no such row",
    "405": "wrong method",
    "429": "too many requests from this address (GLOBAL_API_RATE_LIMIT, or the critical limit); see Retry-After",
}


def op(op_id, summary, role, tag, *, params=(), body=None, data=None, ok=None, errors=(), description=None,
       locked=True):
    responses = {}
    if ok is not False:
        responses["200"] = {"description": "the envelope; `success` tells whether it worked",
                            "content": ok if ok is not None else _json(envelope(data))}
    codes = set(errors) | ({"403"} if locked else set()) | {"429"}
    if role != PUBLIC:
        codes |= {"401", "403"}
    if body is not None or any(p.get("schema", {}).get("type") == "integer" for p in params if p["in"] == "query"):
        codes.add("400")
    if any(p["in"] == "path" for p in params):
        codes.add("404")
    for code in sorted(codes):
        responses[code] = {"description": _ERRORS.get(code, code), "content": _json(s.ref("Error"))}
    operation = {"operationId": op_id, "summary": summary, "tags": [tag], "x-role": role, "responses": responses}
    if role == PUBLIC:
        operation["security"] = []
        summary_role = "public"
    else:
        summary_role = f"{role} (role ≥ {_MIN_ROLE[role]})"
    operation["description"] = (description + "\n\n" if description else "") + f"Access: {summary_role}."
    if params:
        operation["parameters"] = list(params)
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _json(body)}
    return operation


def _routes():
    """(method, path, operation) for every /api route."""
    log_filters = (START, END, TOKEN_NAME, MODEL_NAME)
    return [
        # ---- public and site texts
        ("get", "/api/openapi.json", op("getOpenApi", "This document", PUBLIC, "public",
                                        ok=_json({"type": "object"}))),
        ("get", "/api/status", op("getStatus", "Site status and the settings the pages need", PUBLIC, "public",
                                  data=s.ref("Status"), locked=False)),
        ("get", "/api/notice", op("getNotice", "The notice (Markdown)", PUBLIC, "public", data=s.STRING)),
        ("get", "/api/about", op("getAbout", "The about text (Markdown or a URL)", PUBLIC, "public", data=s.STRING)),
        ("get", "/api/home_page_content", op("getHomePageContent", "The home page text (Markdown or a URL)", PUBLIC,
                                             "public", data=s.STRING)),
        ("get", "/api/models", op("getModelsByType", "Built-in model names per channel type", USER, "channels",
                                  data={"type": "object", "additionalProperties": array(s.STRING)},
                                  description="Keys are channel type ids as strings.")),
        # ---- the caller's own account
        ("post", "/api/user/login", op("login", "Log in; sets the session cookie", PUBLIC, "account",
                                       body=s.ref("LoginBody"), data=s.ref("LoginResult"), locked=False)),
        ("get", "/api/user/logout", op("logout", "Log out; clears the session", PUBLIC, "account", locked=False)),
        # ---- registration, mail and reset (docs/accounts.md)
        ("post", "/api/user/register", op("register", "Create an account with a password", PUBLIC, "account",
                                          params=(TURNSTILE,), body=s.ref("RegisterBody"),
                                          description="Needs RegisterEnabled and PasswordRegisterEnabled; with "
                                                      "EmailVerificationEnabled, an email and its code.")),
        ("get", "/api/verification", op("sendVerification", "Mail a 6-character code proving an address", PUBLIC,
                                        "account", params=(EMAIL, TURNSTILE),
                                        description="Valid 10 minutes, single use, 5 wrong tries.")),
        ("get", "/api/reset_password", op("sendReset", "Mail a password-reset link", PUBLIC, "account",
                                          params=(EMAIL, TURNSTILE),
                                          description="The same answer whether or not the address has an "
                                                      "account.")),
        ("post", "/api/user/reset", op("resetPassword", "Use a reset link: get a new random password", PUBLIC,
                                       "account", body=s.ref("ResetBody"), data=s.STRING)),
        ("get", "/api/oauth/email/bind", op("bindEmailByGet", "Bind a verified address (access token only)", USER,
                                            "account", params=(EMAIL, VERIFICATION_CODE), errors=("405",),
                                            description="405 from a session cookie: pages POST the JSON body.")),
        ("post", "/api/oauth/email/bind", op("bindEmail", "Bind a verified address to the caller", USER, "account",
                                             body=s.ref("BindEmailBody"))),
        ("get", "/api/user/self", op("getSelf", "The caller's account", USER, "account", data=s.ref("User"))),
        ("put", "/api/user/self", op("updateSelf", "Change the caller's username, display name or password", USER,
                                     "account", body=s.ref("SelfUpdateBody"))),
        ("delete", "/api/user/self", op("deleteSelf", "Delete the caller's account (root cannot)", USER, "account")),
        ("post", "/api/user/token", op("newAccessToken", "Make a new management access token", USER, "account",
                                       data=s.text(description="the access token, shown only here"),
                                       description="Replaces the previous access token. The original does this "
                                                   "on GET; here GET answers 405.")),
        ("get", "/api/user/token", op("accessTokenOnGet", "Refused: use POST", PUBLIC, "account", errors=("405",), ok=False,
                                      description="Always 405: a state change on GET could be triggered by "
                                                  "another site.")),
        ("get", "/api/user/aff", op("getAffCode", "The caller's invitation code, made if missing", USER, "account",
                                    data=s.STRING)),
        ("get", "/api/user/available_models", op("getAvailableModels", "Models enabled for the caller's group", USER,
                                                 "account", data=array(s.STRING))),
        ("get", "/api/user/dashboard", op("getDashboard", "Consumption per UTC day and model", USER, "account",
                                          params=(query("days", s.INT32, "how many days, 1 to 31 (default 7)"),),
                                          data=array(s.ref("DashboardRow")))),
        ("post", "/api/user/topup", op("redeem", "Redeem a code; `data` is the quota added", USER, "redemptions",
                                       body=s.ref("RedeemBody"), data=s.INT64)),
        # ---- users
        ("get", "/api/user/", op("listUsers", "Users, a page at a time", ADMIN, "users",
                                 params=(P, PAGE_SIZE, query("order", s.text(enum=["quota", "used_quota",
                                                                                    "request_count"]),
                                                             "sort descending by this; default id descending")),
                                 data=array(s.ref("User")))),
        ("get", "/api/user/search", op("searchUsers", "Users by id, or username/email/display name prefix", ADMIN,
                                       "users", params=(KEYWORD,), data=array(s.ref("User")))),
        ("get", "/api/user/{user_id}", op("getUser", "One user (root, or a role above the user's)", ADMIN, "users",
                                          params=(path_id("user_id", "user"),), data=s.ref("User"))),
        ("post", "/api/user/", op("createUser", "Create a common user", ADMIN, "users", body=s.ref("UserCreateBody"),
                                  data=s.ref("User"))),
        ("put", "/api/user/", op("updateUser", "Change a user below the caller's role", ADMIN, "users",
                                 body=s.ref("UserUpdateBody"), data=s.ref("User"), errors=("404",))),
        ("delete", "/api/user/{user_id}", op("deleteUser", "Delete a user below the caller's role", ADMIN, "users",
                                             params=(path_id("user_id", "user"),),
                                             description="`success: true` when deleted, an error otherwise (the "
                                                         "original has them swapped).")),
        ("post", "/api/user/manage", op("manageUser", "Disable, enable, delete, promote or demote a user", ADMIN,
                                        "users", body=s.ref("UserManageBody"), errors=("404",),
                                        data=s.obj({"role": s.ROLE, "status": s.USER_STATUS}),
                                        description="Only root promotes and demotes; root itself cannot be "
                                                    "disabled, deleted or demoted.")),
        ("get", "/api/group/", op("listGroups", "Group names (the keys of GroupRatio)", ADMIN, "users",
                                  data=array(s.STRING))),
        ("post", "/api/topup", op("topUp", "Add quota to a user, with a top-up log", ADMIN, "redemptions",
                                  body=s.ref("TopUpBody"), errors=("404",))),
        # ---- tokens
        ("get", "/api/token/", op("listTokens", "The caller's tokens, keys masked", USER, "tokens",
                                  params=(P, PAGE_SIZE, query("order", s.text(enum=["remain_quota", "used_quota"]),
                                                              "sort descending by this; default id descending")),
                                  data=array(s.ref("Token")))),
        ("get", "/api/token/search", op("searchTokens", "The caller's tokens by name prefix", USER, "tokens",
                                        params=(KEYWORD,), data=array(s.ref("Token")))),
        ("get", "/api/token/{token_id}", op("getToken", "One of the caller's tokens", USER, "tokens",
                                            params=(path_id("token_id", "token"),), data=s.ref("Token"))),
        ("post", "/api/token/", op("createToken", "Create a token; the full key is in this answer only", USER,
                                   "tokens", body=s.ref("TokenCreateBody"), data=s.ref("Token"))),
        ("put", "/api/token/", op("updateToken", "Change one of the caller's tokens", USER, "tokens",
                                  params=(STATUS_ONLY,), body=s.ref("TokenUpdateBody"), data=s.ref("Token"),
                                  errors=("404",))),
        ("delete", "/api/token/{token_id}", op("deleteToken", "Delete one of the caller's tokens", USER, "tokens",
                                               params=(path_id("token_id", "token"),))),
        ("post", "/api/token/{token_id}/key", op("renewTokenKey", "A new key for the token (ours)", USER, "tokens",
                                                 params=(path_id("token_id", "token"),), data=s.ref("Token"),
                                                 description="The old key stops working at once; the new one is "
                                                             "in this answer only.")),
        # ---- channels
        ("get", "/api/channel/", op("listChannels", "Channels, a page at a time, without keys", ADMIN, "channels",
                                    params=(P, PAGE_SIZE), data=array(s.ref("Channel")))),
        ("get", "/api/channel/search", op("searchChannels", "Channels by id or name prefix", ADMIN, "channels",
                                          params=(KEYWORD,), data=array(s.ref("Channel")))),
        ("get", "/api/channel/{channel_id}", op("getChannel", "One channel, without its key", ADMIN, "channels",
                                                params=(path_id("channel_id", "channel"),), data=s.ref("Channel"))),
        ("post", "/api/channel/", op("createChannels", "Create channels: one per line of `key`", ADMIN, "channels",
                                     body=s.ref("ChannelCreateBody"), data=array(s.INT32),
                                     description="`data` is the list of new channel ids.")),
        ("put", "/api/channel/", op("updateChannel", "Change a channel", ADMIN, "channels",
                                    body=s.ref("ChannelUpdateBody"), data=s.ref("Channel"), errors=("404",),
                                    description="The answer never includes the key.")),
        ("delete", "/api/channel/{channel_id}", op("deleteChannel", "Delete a channel", ADMIN, "channels",
                                                   params=(path_id("channel_id", "channel"),))),
        ("delete", "/api/channel/disabled", op("deleteDisabledChannels", "Delete every disabled channel", ADMIN,
                                               "channels", data=s.INT32)),
        ("get", "/api/channel/models", op("listAllModels", "Every built-in model", ADMIN, "channels",
                                          ok=_json(s.ref("ModelList")))),
        ("get", "/api/channel/test", op("testAllChannels", "Test every channel in the background", ADMIN,
                                        "channels", params=(query("scope", s.text(enum=["all", "disabled"]),
                                                                  "which channels (default all)"),),
                                        errors=("400",))),
        ("get", "/api/channel/test/{channel_id}", op(
            "testChannel", "Test one channel now", ADMIN, "channels",
            params=(path_id("channel_id", "channel"), query("model", s.STRING, "model to try")),
            ok=_json({"anyOf": [s.ref("ChannelTestResult"), s.ref("Error")]}))),
        ("get", "/api/channel/update_balance", op("updateAllBalances", "Query every enabled channel's balance",
                                                  ADMIN, "channels",
                                                  data={"type": "object", "additionalProperties": {}},
                                                  description="`data` maps channel id to balance (USD) or error.")),
        ("get", "/api/channel/update_balance/{channel_id}", op(
            "updateBalance", "Query one channel's balance", ADMIN, "channels",
            params=(path_id("channel_id", "channel"),), ok=_json({"anyOf": [s.ref("BalanceResult"), s.ref("Error")]}))),
        # ---- redemptions
        ("get", "/api/redemption/", op("listRedemptions", "Redemption codes, a page at a time", ADMIN,
                                       "redemptions", params=(P, PAGE_SIZE), data=array(s.ref("Redemption")))),
        ("get", "/api/redemption/search", op("searchRedemptions", "Codes by id or name prefix", ADMIN,
                                             "redemptions", params=(KEYWORD,), data=array(s.ref("Redemption")))),
        ("get", "/api/redemption/{redemption_id}", op("getRedemption", "One code", ADMIN, "redemptions",
                                                      params=(path_id("redemption_id", "code"),),
                                                      data=s.ref("Redemption"))),
        ("post", "/api/redemption/", op("createRedemptions", "Create `count` codes; `data` is their keys", ADMIN,
                                        "redemptions", body=s.ref("RedemptionCreateBody"), data=array(s.STRING))),
        ("put", "/api/redemption/", op("updateRedemption", "Change a code", ADMIN, "redemptions",
                                       params=(STATUS_ONLY,), body=s.ref("RedemptionUpdateBody"),
                                       data=s.ref("Redemption"), errors=("404",))),
        ("delete", "/api/redemption/{redemption_id}", op("deleteRedemption", "Delete a code", ADMIN, "redemptions",
                                                         params=(path_id("redemption_id", "code"),))),
        ("get", "/api/redemption/export", op(
            "exportRedemptions", "CSV of a batch (by name), or of every unused code", ADMIN, "redemptions",
            params=(query("name", s.STRING, "the batch name; empty: every unused code"),),
            ok={"text/csv": {"schema": s.text(description="id,name,key,quota,status,created_time,redeemed_time")}},
            description="Ours. The answer is CSV, not the envelope.")),
        # ---- logs
        ("get", "/api/log/", op("listLogs", "Every log, a page at a time", ADMIN, "logs",
                                params=(P, PAGE_SIZE, LOG_TYPE, *log_filters, USERNAME, CHANNEL),
                                data=array(s.ref("Log")))),
        ("delete", "/api/log/", op("deleteLogs", "Delete logs older than a time", ADMIN, "logs",
                                   params=(query("target_timestamp", s.INT64, "unix seconds", required=True),),
                                   data=s.INT64)),
        ("get", "/api/log/stat", op("logStat", "Sum of consumed quota", ADMIN, "logs",
                                    params=(LOG_TYPE, *log_filters, USERNAME, CHANNEL),
                                    data=s.obj({"quota": s.INT64}),
                                    description="`type` is ignored: the sum covers consume logs, as in the "
                                                "original.")),
        ("get", "/api/log/search", op("searchLogs", "Logs by type or content prefix (at most 100)", ADMIN, "logs",
                                      params=(KEYWORD,), data=array(s.ref("Log")))),
        ("get", "/api/log/self", op("listOwnLogs", "The caller's logs (without ids)", USER, "logs",
                                    params=(P, PAGE_SIZE, LOG_TYPE, *log_filters), data=array(s.ref("Log")))),
        ("get", "/api/log/self/", op("listOwnLogsSlash", "The caller's logs (the SPA's spelling)", USER, "logs",
                                     params=(P, PAGE_SIZE, LOG_TYPE, *log_filters), data=array(s.ref("Log")))),
        ("get", "/api/log/self/stat", op("ownLogStat", "Sum of the caller's consumed quota", USER, "logs",
                                         params=(LOG_TYPE, *log_filters), data=s.obj({"quota": s.INT64}))),
        ("get", "/api/log/self/search", op("searchOwnLogs", "The caller's logs by type or content prefix", USER,
                                           "logs", params=(KEYWORD,), data=array(s.ref("Log")))),
        # ---- third-party login (docs/accounts.md)
        ("get", "/api/oauth/state", op("oauthState", "Make the OAuth state of this session", PUBLIC, "account",
                                       data=s.STRING, description="12 random characters, kept in the session "
                                                                  "for 10 minutes; each can be used once.")),
        *[("get", f"/api/oauth/{name}",
           op(f"oauth{label}", f"Log in, register or bind with a {title} authorization code", PUBLIC, "account",
              params=(OAUTH_CODE, OAUTH_STATE), data=s.ref("LoginResult"), errors=("403",),
              description="403 when the state is not this session's. With a user logged in, the identity is "
                          "bound to that user and `message` is \"bind\" (no data).")) for name, label, title in
          (("github", "GitHub", "GitHub"), ("oidc", "Oidc", "OIDC"), ("lark", "Lark", "Lark"))],
        ("get", "/api/oauth/wechat", op("oauthWeChat", "Log in or register with a WeChat verification code", PUBLIC,
                                        "account", params=(WECHAT_CODE, WECHAT_STATE), data=s.ref("LoginResult"),
                                        errors=("400",), description="400 without the state or the header.")),
        ("get", "/api/oauth/wechat/bind", op("oauthWeChatBind", "Bind WeChat to the caller", USER, "account",
                                             params=(WECHAT_CODE, WECHAT_STATE), errors=("400",),
                                             description="400 without the state or the header.")),
        # ---- options
        ("get", "/api/option/", op("listOptions", "Every option except secrets", ROOT, "options",
                                   data=array(s.ref("Option")),
                                   description="Keys ending in Token, Secret or SecretKey are left out.")),
        ("put", "/api/option/", op("updateOption", "Set one option", ROOT, "options", body=s.ref("OptionBody"))),
    ]


def build(version):
    paths = {}
    for method, path, operation in _routes():
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "One API (Python) management API", "version": version, "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "security": [{"session": []}, {"accessToken": []}],
        "tags": TAGS,
        "paths": paths,
        "components": s.components(),
    }
