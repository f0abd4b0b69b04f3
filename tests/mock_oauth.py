"""A local stand-in for GitHub, an OIDC provider, Lark and the WeChat Server, on a loopback port.

Tests hand out codes with `give(provider, code, user)`; the token endpoints trade a known code for an access
token, and the user endpoints answer the user behind that token. `mode` makes every answer fail instead:
"garbage" (an HTML page), "500", "slow" (sleeps `delay` seconds first)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CLIENT_SECRETS = {"github": "gh-secret-value-123", "oidc": "oidc-secret-value-456",
                  "lark": "lark-secret-value-789"}
WECHAT_TOKEN = "wechat-server-token-abc"


class MockOAuth:
    def __init__(self):
        self.codes = {}  # (provider, code) -> user JSON
        self.tokens = {}  # access token -> user JSON
        self.seen = []  # (method, path, headers, body text)
        self.mode = ""
        self.delay = 0.0
        handler = type("Handler", (_Handler,), {"mock": self})
        self.server = _Server(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def give(self, provider, code, user):
        self.codes[(provider, code)] = user

    def reset(self):
        self.codes.clear()
        self.tokens.clear()
        self.seen.clear()
        self.mode, self.delay = "", 0.0

    def requests_to(self, path):
        return [s for s in self.seen if s[1].split("?")[0] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that gave up (the timeout tests) is expected


class _Handler(BaseHTTPRequestHandler):
    mock: MockOAuth

    def log_message(self, *args):
        pass

    def _send(self, status, payload, content_type="application/json"):
        body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _fail_if_told(self):
        mock = self.mock
        if mock.mode == "slow":
            time.sleep(mock.delay)
        if mock.mode == "garbage":
            self._send(200, "<html><body>Service Unavailable</body></html>", "text/html")
            return True
        if mock.mode == "500":
            self._send(500, {"message": "internal"})
            return True
        return False

    def _record(self):
        length = int(self.headers.get("Content-Length") or 0)
        text = self.rfile.read(length).decode() if length else ""
        self.mock.seen.append((self.command, self.path, dict(self.headers), text))
        return text

    def _token(self, provider, fields):
        mock = self.mock
        if fields.get("client_secret") != CLIENT_SECRETS[provider]:
            return self._send(200 if provider == "github" else 401,
                              {"error": "invalid_client", "error_description": "bad client credentials"})
        user = mock.codes.pop((provider, fields.get("code")), None)
        if user is None:
            return self._send(200 if provider == "github" else 400,
                              {"error": "bad_verification_code", "error_description": "The code is incorrect or expired."})
        token = f"at-{provider}-{len(mock.tokens)}"
        mock.tokens[token] = user
        reply = {"access_token": token, "token_type": "bearer" if provider == "github" else "Bearer"}
        if provider == "lark":
            reply.update(code=0, expires_in=7200)
        return self._send(200, reply)

    def _user(self):
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        user = self.mock.tokens.get(token)
        if user is None:
            return self._send(401, {"message": "Bad credentials"})
        return self._send(200, user)

    def do_POST(self):  # noqa: N802
        text = self._record()
        if self._fail_if_told():
            return None
        path = urlsplit(self.path).path
        if self.headers.get("Content-Type", "").startswith("application/json"):
            fields = json.loads(text or "{}")
        else:
            fields = {k: v[0] for k, v in parse_qs(text).items()}
        provider = {"/github/login/oauth/access_token": "github", "/oidc/token": "oidc",
                    "/lark/token": "lark"}.get(path)
        if provider is None:
            return self._send(404, {"message": "no such path"})
        return self._token(provider, fields)

    def do_GET(self):  # noqa: N802
        self._record()
        if self._fail_if_told():
            return None
        parts = urlsplit(self.path)
        if parts.path == "/.well-known/openid-configuration":
            base = self.mock.url
            return self._send(200, {"issuer": base, "authorization_endpoint": base + "/oidc/authorize",
                                    "token_endpoint": base + "/oidc/token", "userinfo_endpoint": base + "/oidc/userinfo"})
        if parts.path in ("/github-api/user", "/oidc/userinfo", "/lark/userinfo"):
            return self._user()
        if parts.path == "/api/wechat/user":
            if self.headers.get("Authorization") != WECHAT_TOKEN:
                return self._send(200, {"success": False, "message": "bad token"})
            user = self.mock.codes.pop(("wechat", parse_qs(parts.query).get("code", [""])[0]), None)
            if user is None:
                return self._send(200, {"success": False, "message": "the code is wrong or has expired"})
            return self._send(200, {"success": True, "message": "", "data": user})
        return self._send(404, {"message": "no such path"})
