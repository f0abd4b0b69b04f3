"""Third-party identity providers (spec §3.7): each turns an authorization code into an Identity.

The OAuth clients are Authlib sessions built for each request from the current options, so a changed client
id or secret applies at once and nothing is cached. GitHub's and Lark's URLs come from the operator's
configuration (GITHUB_OAUTH_BASE_URL, GITHUB_API_BASE_URL, LARK_*_URL); the OIDC endpoints and the WeChat
server are options set in the console, so those calls go through the egress guard. Every call has a 5 s
timeout, and every failure is a ProviderError whose message is safe to show: it never holds a secret.
"""

import json
import logging
from dataclasses import dataclass
from urllib.parse import urlencode

import requests
from flask import current_app
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from oneapi.services import egress

log = logging.getLogger(__name__)
TIMEOUT = 5
ID_MAX = 191  # the users.*_id columns


@dataclass(frozen=True)
class Provider:
    name: str  # as in the URLs: /api/oauth/<name>
    label: str
    column: str  # the users column holding the identity
    default_display_name: str


PROVIDERS = {p.name: p for p in (
    Provider("github", "GitHub", "github_id", "GitHub User"),
    Provider("oidc", "OIDC", "oidc_id", "OIDC User"),
    Provider("lark", "Lark", "lark_id", "Lark User"),
    Provider("wechat", "WeChat", "wechat_id", "WeChat User"),
)}


@dataclass
class Identity:
    provider: Provider
    id: str
    display_name: str = ""
    email: str = ""
    username: str = ""  # a wished-for username (OIDC preferred_username)
    legacy_id: str = ""  # what the original stored instead of `id` (GitHub: the login)


class ProviderError(Exception):
    """The provider could not be asked, or did not vouch for the code. The message is safe to show."""


def enabled(name, o):
    """The original's switches: GitHub, OIDC and WeChat have one; Lark works whenever it is configured."""
    if name == "github":
        return o.bool("GitHubOAuthEnabled") and bool(o.get("GitHubClientId"))
    if name == "oidc":
        return o.bool("OidcEnabled") and bool(o.get("OidcClientId"))
    if name == "lark":
        return bool(o.get("LarkClientId"))
    if name == "wechat":
        return o.bool("WeChatAuthEnabled") and bool(o.get("WeChatServerAddress"))
    return False


# ---- Authlib plumbing


def _json_client_auth(client, method, uri, headers, body):
    """Lark's token endpoint takes the usual fields, client credentials included, as a JSON body."""
    from authlib.common.urls import url_decode

    fields = dict(url_decode(body or ""))
    fields.update(client_id=client.client_id, client_secret=client.client_secret or "")
    body = json.dumps(fields)
    headers["Content-Type"] = "application/json"
    if "Content-Length" in headers:
        headers["Content-Length"] = str(len(body.encode()))
    return uri, headers, body


class _EgressAdapter(BaseAdapter):
    """Sends a requests-library request through the egress guard (for URLs chosen in the console)."""

    _DROPPED = {"host", "accept-encoding", "connection", "content-length"}

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        headers = {k: v for k, v in request.headers.items() if k.lower() not in self._DROPPED}
        body = request.body.encode() if isinstance(request.body, str) else request.body
        answer = egress.request(request.method, request.url, headers=headers, body=body, connect_timeout=TIMEOUT,
                                read_timeout=TIMEOUT, total_timeout=2 * TIMEOUT)
        response = requests.Response()
        response.status_code = answer.status
        response.headers = CaseInsensitiveDict(answer.headers)
        response._content = answer.body
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        response.url, response.request, response.reason = request.url, request, ""
        return response

    def close(self):
        pass


def _session(client_id, client_secret, redirect_uri, *, scope=None, auth_method="client_secret_post",
             guarded=False):
    # Authlib (and cryptography under it) is ~12 MB per worker: imported at the first third-party login only.
    from authlib.integrations.requests_client import OAuth2Session

    client = OAuth2Session(client_id, client_secret, token_endpoint_auth_method=auth_method, scope=scope,
                           redirect_uri=redirect_uri, default_timeout=TIMEOUT)
    if guarded:
        client.mount("http://", _EgressAdapter())
        client.mount("https://", _EgressAdapter())
    return client


def _clean(text, secret):
    text = str(text or "")[:200]
    return text.replace(secret, "***") if secret else text


def _call(label, secret, work):
    """Run `work()`, turning every way a provider call can fail into a ProviderError worth showing."""
    from authlib.integrations.requests_client import OAuthError

    try:
        return work()
    except ProviderError:
        raise
    except OAuthError as error:
        detail = _clean(error.error, secret)
        if error.description:
            detail += ": " + _clean(error.description, secret)
        raise ProviderError(f"{label} did not accept the code ({detail})") from None
    except requests.Timeout:
        raise ProviderError(f"{label} did not answer in time; try again later") from None
    except requests.HTTPError as error:
        raise ProviderError(f"{label} answered HTTP {error.response.status_code}") from None
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema):
        raise ProviderError(f"the URL configured for {label} is not valid") from None
    except ValueError:  # before RequestException: requests' JSONDecodeError is both
        raise ProviderError(f"{label} answered with something that is not JSON") from None
    except requests.RequestException as error:
        log.warning("%s: %s", label, type(error).__name__)
        raise ProviderError(f"could not connect to {label}; try again later") from None
    except egress.EgressError as error:
        raise ProviderError(f"{label}: {error}") from None


def _fetch(client, label, secret, token_url, code, userinfo_url, headers=None):
    """Exchange the code at `token_url`, then read the user at `userinfo_url` with the access token."""
    def work():
        token = client.fetch_token(token_url, code=code, grant_type="authorization_code")
        if not isinstance(token.get("access_token"), str) or not token["access_token"]:
            raise ProviderError(f"{label} did not return an access token")
        if str(token.get("token_type") or "bearer").lower() != "bearer":
            client.token = {**token, "token_type": "bearer"}
        reply = client.get(userinfo_url, headers=headers)
        if reply.status_code != 200:
            raise ProviderError(f"{label} refused the user lookup (HTTP {reply.status_code})")
        data = reply.json()
        if not isinstance(data, dict):
            raise ProviderError(f"{label} answered with something that is not a JSON object")
        return data

    return _call(label, secret, work)


def _text(data, key):
    value = data.get(key)
    return value.strip() if isinstance(value, str) else ""


# ---- the providers


def _github(o, code, redirect_uri):
    config = current_app.config
    secret = o.get("GitHubClientSecret")
    client = _session(o.get("GitHubClientId"), secret, redirect_uri)
    data = _fetch(client, "GitHub", secret, config["GITHUB_OAUTH_BASE_URL"].rstrip("/") + "/login/oauth/access_token",
                  code, config["GITHUB_API_BASE_URL"].rstrip("/") + "/user",
                  headers={"Accept": "application/vnd.github+json"})
    number = data.get("id")
    if isinstance(number, bool) or not isinstance(number, int) or not _text(data, "login"):
        raise ProviderError("GitHub returned a user without an id or login")
    # The numeric id, which never changes hands; the original stored the login, which can be renamed and
    # then registered by someone else.
    return Identity(PROVIDERS["github"], str(number), _text(data, "name"), _text(data, "email"),
                    legacy_id=_text(data, "login"))


def oidc_endpoints(o):
    """(authorization, token, userinfo) endpoints: the options, completed from OidcWellKnown when it is set."""
    endpoints = [o.get("OidcAuthorizationEndpoint"), o.get("OidcTokenEndpoint"), o.get("OidcUserinfoEndpoint")]
    if not all(endpoints) and o.get("OidcWellKnown"):
        def discover():
            answer = egress.get(o.get("OidcWellKnown"), connect_timeout=TIMEOUT, read_timeout=TIMEOUT,
                                total_timeout=2 * TIMEOUT)
            if answer.status != 200:
                raise ProviderError(f"the OIDC discovery document answered HTTP {answer.status}")
            return answer.json()

        document = _call("the OIDC provider", "", discover)
        if not isinstance(document, dict):
            raise ProviderError("the OIDC discovery document is not a JSON object")
        keys = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint")
        endpoints = [mine or _text(document, key) for mine, key in zip(endpoints, keys, strict=True)]
    if not all(endpoints):
        raise ProviderError("OIDC is not fully configured: set OidcWellKnown or all three endpoints")
    return endpoints


def _oidc(o, code, redirect_uri):
    secret = o.get("OidcClientSecret")
    _, token_url, userinfo_url = oidc_endpoints(o)
    client = _session(o.get("OidcClientId"), secret, redirect_uri, guarded=True)
    data = _fetch(client, "the OIDC provider", secret, token_url, code, userinfo_url)
    if not _text(data, "sub"):
        raise ProviderError("the OIDC provider returned a user without a subject (sub)")
    email = _text(data, "email") if data.get("email_verified") not in (False, "false") else ""
    return Identity(PROVIDERS["oidc"], _text(data, "sub"), _text(data, "name"), email,
                    username=_text(data, "preferred_username"))


def _lark(o, code, redirect_uri):
    config = current_app.config
    secret = o.get("LarkClientSecret")
    client = _session(o.get("LarkClientId"), secret, redirect_uri, auth_method=_json_client_auth)
    data = _fetch(client, "Lark", secret, config["LARK_TOKEN_URL"], code, config["LARK_USERINFO_URL"])
    if not _text(data, "open_id"):
        raise ProviderError("Lark returned a user without an open_id")
    return Identity(PROVIDERS["lark"], _text(data, "open_id"), _text(data, "name"), _text(data, "email"))


_EXCHANGES = {"github": _github, "oidc": _oidc, "lark": _lark}


def _checked(identity):
    if len(identity.id) > ID_MAX:
        raise ProviderError(f"{identity.provider.label} returned an id longer than {ID_MAX} characters")
    return identity


def identify(name, o, code, redirect_uri):
    """The Identity behind an authorization code given to GitHub, OIDC or Lark."""
    if not code or len(code) > 1024:
        raise ProviderError("the code is missing")
    return _checked(_EXCHANGES[name](o, code, redirect_uri))


def authorize_url(name, o, redirect_uri, state):
    """Where to send the browser to log in at the provider."""
    config = current_app.config
    if name == "github":
        url = config["GITHUB_OAUTH_BASE_URL"].rstrip("/") + "/login/oauth/authorize"
        client, scope = o.get("GitHubClientId"), "user:email"
    elif name == "oidc":
        url, client, scope = oidc_endpoints(o)[0], o.get("OidcClientId"), "openid profile email"
    else:
        url, client, scope = config["LARK_AUTHORIZE_URL"], o.get("LarkClientId"), None
    return _session(client, None, redirect_uri, scope=scope).create_authorization_url(url, state=state)[0]


def wechat_identify(o, code):
    """Ask the WeChat Server (a companion project) whose code this is: {success, message, data: wechat id}."""
    code = (code or "").strip()
    if not code or len(code) > 64:
        raise ProviderError("the verification code is missing")
    token = o.get("WeChatServerToken")
    url = o.get("WeChatServerAddress").rstrip("/") + "/api/wechat/user?" + urlencode({"code": code})

    def work():
        answer = egress.get(url, headers={"Authorization": token}, connect_timeout=TIMEOUT, read_timeout=TIMEOUT,
                            total_timeout=2 * TIMEOUT)
        if answer.status != 200:
            raise ProviderError(f"the WeChat server answered HTTP {answer.status}")
        return answer.json()

    reply = _call("the WeChat server", token, work)
    if not isinstance(reply, dict):
        raise ProviderError("the WeChat server answered with something that is not a JSON object")
    if reply.get("success") is not True:
        raise ProviderError(_clean(reply.get("message"), token) or "the WeChat server refused the code")
    wechat_id = reply.get("data")
    if not isinstance(wechat_id, str) or not wechat_id.strip():
        raise ProviderError("the verification code is wrong or has expired")
    return _checked(Identity(PROVIDERS["wechat"], wechat_id.strip()))
