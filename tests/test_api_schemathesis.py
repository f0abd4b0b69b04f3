"""Schemathesis against the OpenAPI document: every /api operation, with generated valid and invalid input,
called through the WSGI app as root (default password changed, access token header). No answer may be a 5xx,
and every answer must match what the document says (status code, content type, JSON shape).

Each operation gets a fresh database seeded with a user, a channel on the mock upstream, a token, redemption
codes and log rows, so reads find rows to serialise and ids in the document's examples exist. Outbound
connections are refused unless they go to the loopback address, so a generated `base_url` can never send
traffic anywhere else."""

import socket
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from oneapi.extensions import db
from oneapi.models import Log, LogType, User
from oneapi.models.user import ROLE_COMMON
from oneapi.openapi.document import build
from tests.conftest import add_channel, add_token

MAX_EXAMPLES = 6

CONFIG = schemathesis.config.SchemathesisConfig.from_dict({
    "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
})
schema = schemathesis.openapi.from_dict(build("test"), config=CONFIG)


def _loopback(host):
    return host in ("localhost", "::1") or str(host).startswith("127.")


@pytest.fixture(scope="module", autouse=True)
def loopback_only():
    """Refuse every name lookup and connection that is not to the loopback address."""
    real_getaddrinfo, real_connect, real_connect_ex = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, bytes):
            host = host.decode()
        if host is not None and not _loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: {host} is not loopback")
        return real_getaddrinfo(host, *args, **kwargs)

    def guarded(real):
        def connect(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
                raise ConnectionRefusedError(f"test guard: {address[0]} is not loopback")
            return real(self, address)

        return connect

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = guarded(real_connect)
    socket.socket.connect_ex = guarded(real_connect_ex)
    yield
    socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex = real_getaddrinfo, real_connect, real_connect_ex


@pytest.fixture
def seeded(app, root, upstream):
    """Root's access token after a world of rows has been made."""
    access_token = root.post("/api/user/token", headers={"X-Requested-With": "XMLHttpRequest"}).json["data"]
    add_channel(root, upstream.url, name="seed")
    add_token(root, name="seed")
    assert root.post("/api/redemption/", json={"name": "seed", "count": 2, "quota": 1000}).json["success"]
    with app.app_context():
        user = User(username="someone", display_name="someone", role=ROLE_COMMON, quota=1000)
        user.set_password("someone-pass-1")
        db.session.add(user)
        now = int(time.time())
        db.session.add_all([
            Log(user_id=1, username="root", type=LogType.CONSUME, content="seed", model_name="gpt-4o-mini",
                token_name="seed", quota=10, channel_id=1, created_at=now),
            Log(user_id=1, username="root", type=LogType.TOPUP, content="seed top-up", quota=5, created_at=now),
        ])
        db.session.commit()
    return access_token


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, app, seeded):
    response = case.call(app=app, headers={"Authorization": seeded})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} query={case.query!r} body={case.body!r} -> "
        f"{response.status_code} {response.text[:300]}")
    # The document stays true: documented status codes, content types and response shapes.
    case.validate_response(response, checks=[status_code_conformance, content_type_conformance,
                                             response_schema_conformance])


# ---- every integer input at and beyond the 64-bit limits, each on its own, in one deterministic sweep ------

HUGE = (2**63, -(2**63) - 1, 10**30)
FILLER = {"username": "someone", "password": "long-enough-1", "key": "sk-filler", "name": "filler",
          "action": "enable", "id": 1, "user_id": 2, "quota": 1}


def _resolve(document, schema):
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def integer_inputs(document):
    """(method, path, where, name, required body fields) for every integer parameter and body field."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                if parameter["schema"].get("type") == "integer":
                    yield method, path, parameter["in"], parameter["name"], {}
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                schema = _resolve(document, body["schema"])
                required = {name: FILLER.get(name, 1 if schema["properties"][name].get("type") == "integer" else "x")
                            for name in schema.get("required", ())}
                for name, prop in schema["properties"].items():
                    if prop.get("type") == "integer":
                        yield method, path, "body", name, required


def test_huge_integers_never_500(app, seeded):
    client = app.test_client()
    headers = {"Authorization": seeded}
    failures = []
    for method, path, where, name, required in integer_inputs(build("test")):
        for value in HUGE:
            url, query, body = path, {}, None
            if where == "path":
                if value < 0:
                    continue
                url = path.replace("{" + name + "}", str(value))
            elif where == "query":
                query = {name: str(value)}
            else:
                body = {**required, name: value}
            url = url.replace("{user_id}", "2").replace("{token_id}", "1").replace("{channel_id}", "1")
            url = url.replace("{redemption_id}", "1")
            reply = client.open(url, method=method.upper(), query_string=query, json=body, headers=headers)
            if reply.status_code >= 500:
                failures.append(f"{method.upper()} {path} {where} {name}={value} -> {reply.status_code}")
    assert not failures, "\n".join(failures)


def test_quota_stays_an_integer(app, seeded):
    """SQLite turns an overflowing integer sum into a float: a balance must be refused before it gets there."""
    client = app.test_client()
    headers = {"Authorization": seeded}
    reply = client.put("/api/user/", json={"id": 2, "quota": 2**63 - 1}, headers=headers)
    assert reply.status_code < 500
    reply = client.post("/api/topup", json={"user_id": 2, "quota": 2**62}, headers=headers)
    assert reply.status_code < 500
    reply = client.put("/api/user/", json={"id": 1, "quota": 10**30}, headers=headers)
    assert reply.status_code < 500 and reply.json["success"] is False, reply.json
    for user_id in (1, 2):
        quota = client.get(f"/api/user/{user_id}", headers=headers).json["data"]["quota"]
        assert isinstance(quota, int) and 0 <= quota < 2**63, (user_id, quota)
