"""The management API's envelope (spec §1.2): {"success", "message", "data"}, and input helpers."""

import json

from flask import jsonify, request

ITEMS_PER_PAGE = 10
MAX_PAGE_SIZE = 100
MAX_PAGE = 10_000_000
BIGINT_MAX = 2**63 - 1  # the database columns are 64-bit; larger numbers are refused, never a 500
ID_MAX = 2**31 - 1  # row ids are 32-bit integers
MAX_BALANCE = 10**18  # any quota or balance, with room below BIGINT_MAX for sums


class ApiError(Exception):
    """A refusal on /api. Business errors keep the original's HTTP 200 unless a status is given."""

    def __init__(self, message, status=200):
        super().__init__(message)
        self.message = message
        self.status = status


def ok(data=None, message=""):
    body = {"success": True, "message": message}
    if data is not None:
        body["data"] = data
    return jsonify(body)


def fail(message, status=200):
    return jsonify({"success": False, "message": message}), status


def json_object():
    """The request body as a JSON object, or a 400 that says what is wrong with it.

    A request authenticated by the session cookie must say `Content-Type: application/json`: a page on
    another site cannot send that without a CORS preflight, which /api never grants, so cookie-authenticated
    state changes cannot be forged. Scripts using an access token may leave the header out, as the
    original allowed."""
    if not request.data:
        raise ApiError("the request body must be a JSON object", 400)
    if not request.is_json and not request.headers.get("Authorization"):
        raise ApiError("send the body with Content-Type: application/json", 415)
    try:
        body = request.get_json(silent=True, force=True)
    except RecursionError:
        raise ApiError("the request body is nested too deeply", 400) from None
    if not isinstance(body, dict):
        raise ApiError("the request body must be a JSON object", 400)
    try:  # "\ud800" parses into a string no database driver can store
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ApiError("the request body has text that is not valid Unicode (a lone surrogate)", 400) from None
    except (RecursionError, ValueError):
        raise ApiError("the request body is nested too deeply", 400) from None
    return body


def page():
    """(offset, limit) from `p` (0-based, as in the original) and an optional bounded `page_size`."""
    index, size = query_int("p"), query_int("page_size", ITEMS_PER_PAGE)
    if index > MAX_PAGE:
        raise ApiError(f"p must be at most {MAX_PAGE}", 400)
    index = max(index, 0)
    size = min(max(size, 1), MAX_PAGE_SIZE)
    return index * size, size


def query_int(name, default=0, maximum=BIGINT_MAX):
    """An integer query parameter, within ±maximum (64-bit by default), or a 400 that names it."""
    value = request.args.get(name, "")
    if value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(f"{name} must be an integer", 400) from None
    if abs(number) > maximum:
        raise ApiError(f"{name} is out of range", 400)
    return number


def field(body, name, kind, *, default=None, required=False):
    """One typed field of a JSON body; bool is not accepted where a number is expected."""
    if name not in body or body[name] is None:
        if required:
            raise ApiError(f"{name} is required")
        return default
    value = body[name]
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(f"{name} must be an integer")
        if abs(value) > (ID_MAX if name == "id" or name.endswith("_id") else BIGINT_MAX):
            raise ApiError(f"{name} is out of range")
    if kind is bool and not isinstance(value, bool):
        raise ApiError(f"{name} must be true or false")
    if kind is str and not isinstance(value, str):
        raise ApiError(f"{name} must be a string")
    return value


def starts_with(column, text):
    """`column LIKE 'text%'` with the wildcards in `text` escaped, so user input matches only itself."""
    pattern = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return column.like(pattern, escape="\\")


def keyword_id(keyword):
    """The search keyword as a row id, when it can be one."""
    return int(keyword) if keyword.isdigit() and int(keyword) <= ID_MAX else None


def found(row, what):
    """`row`, or a 404 saying which kind of thing was not found."""
    if row is None:
        raise ApiError(f"{what} not found", 404)
    return row
