"""The OpenAPI document at GET /api/openapi.json stays true: every /api rule of app.url_map (with each of its
methods) is documented, every documented operation exists, and the document is valid OpenAPI 3.0."""

import re

from oneapi.openapi.document import build

IGNORED_METHODS = {"HEAD", "OPTIONS"}
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}


def documented_path(rule):
    """Werkzeug's `/api/user/<int:user_id>` is OpenAPI's `/api/user/{user_id}`."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def app_operations(app):
    operations = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") or rule.rule == "/api":
            for method in rule.methods - IGNORED_METHODS:
                operations[(documented_path(rule.rule), method.lower())] = rule
    return operations


def document_operations(document):
    return {(path, method): operation for path, item in document["paths"].items()
            for method, operation in item.items() if method in HTTP_METHODS}


def test_served_publicly_and_same_as_built(app, root):
    anonymous = app.test_client()
    reply = anonymous.get("/api/openapi.json")
    assert reply.status_code == 200, reply.data
    assert reply.json == build(app.config["VERSION"])
    assert reply.json["openapi"].startswith("3.0")


def test_every_api_rule_is_documented(app):
    documented = document_operations(build(app.config["VERSION"]))
    missing = sorted(set(app_operations(app)) - set(documented))
    assert not missing, f"routes missing from oneapi/openapi/document.py: {missing}"


def test_every_documented_operation_exists(app):
    documented = document_operations(build(app.config["VERSION"]))
    extra = sorted(set(documented) - set(app_operations(app)))
    assert not extra, f"documented operations with no route: {extra}"


def test_path_parameters_match_the_rules(app):
    documented = document_operations(build(app.config["VERSION"]))
    for (path, method), rule in app_operations(app).items():
        operation = documented[(path, method)]
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(rule.arguments), (path, method)
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                converter = rule._converters[parameter["name"]]
                if type(converter).__name__ == "IntegerConverter":
                    assert parameter["schema"]["type"] == "integer", (path, parameter)


def test_valid_openapi_30():
    from schemathesis.specs.openapi.definitions import OPENAPI_30_VALIDATOR

    document = build("test")
    errors = [str(error) for error in OPENAPI_30_VALIDATOR.iter_errors(document)]
    assert not errors, errors[:5]


def test_every_reference_resolves_and_every_operation_is_complete():
    document = build("test")
    schemas = document["components"]["schemas"]
    text = repr(document)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in schemas, name
    ids = set()
    for (path, method), operation in document_operations(document).items():
        assert operation["operationId"] not in ids, operation["operationId"]
        ids.add(operation["operationId"])
        assert operation["x-role"] in ("public", "user", "admin", "root"), (path, method)
        assert operation["summary"] and operation["responses"], (path, method)
        if operation["x-role"] == "public":
            assert operation["security"] == [], (path, method)
        else:
            assert "security" not in operation and {"401", "403"} <= set(operation["responses"]), (path, method)
        if method in ("post", "put") and path not in ("/api/user/token", "/api/user/logout") and "{" not in path:
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            assert body and body["schema"], f"{method} {path} documents no JSON body"
    assert set(document["components"]["securitySchemes"]) == {"session", "accessToken"}
    assert document["components"]["securitySchemes"]["accessToken"]["name"] == "Authorization"


def test_every_list_route_documents_pagination():
    for (path, method), operation in document_operations(build("test")).items():
        names = {p["name"] for p in operation.get("parameters", [])}
        if path.endswith("/search"):
            assert "keyword" in names, path
        if path in ("/api/user/", "/api/token/", "/api/channel/", "/api/redemption/", "/api/log/",
                    "/api/log/self", "/api/log/self/") and method == "get":
            assert {"p", "page_size"} <= names, path


def test_object_schemas_list_exactly_what_the_routes_return(app):
    """Each model's to_dict() keys are the documented properties, so a new column shows up here."""
    from oneapi.models import Channel, Log, Redemption, Token, User

    schemas = build("test")["components"]["schemas"]
    with app.app_context():
        samples = {"User": User(username="u", quota=0, used_quota=0, request_count=0),
                   "Token": Token(user_id=1, name="t", key_hint="abcd", remain_times=-1),
                   "Channel": Channel(name="c", key="k"), "Redemption": Redemption(name="r", key="k"),
                   "Log": Log(content="x")}
        for name, sample in samples.items():
            assert set(sample.to_dict()) == set(schemas[name]["properties"]), name
