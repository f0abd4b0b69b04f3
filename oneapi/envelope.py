"""The management API's envelope (spec §1.2): {"success", "message", "data"}, and input helpers."""

from flask import jsonify, request

ITEMS_PER_PAGE = 10
MAX_PAGE_SIZE = 100


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
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    if not request.data:
        raise ApiError("the request body must be a JSON object", 400)
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        raise ApiError("the request body must be a JSON object", 400)
    return body


def page():
    """(offset, limit) from `p` (0-based, as in the original) and an optional bounded `page_size`."""
    try:
        index = max(int(request.args.get("p", 0)), 0)
        size = int(request.args.get("page_size", ITEMS_PER_PAGE))
    except ValueError:
        raise ApiError("p and page_size must be integers", 400) from None
    size = min(max(size, 1), MAX_PAGE_SIZE)
    return index * size, size


def field(body, name, kind, *, default=None, required=False):
    """One typed field of a JSON body; bool is not accepted where a number is expected."""
    if name not in body or body[name] is None:
        if required:
            raise ApiError(f"{name} is required")
        return default
    value = body[name]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ApiError(f"{name} must be an integer")
    if kind is bool and not isinstance(value, bool):
        raise ApiError(f"{name} must be true or false")
    if kind is str and not isinstance(value, str):
        raise ApiError(f"{name} must be a string")
    return value


def starts_with(column, text):
    """`column LIKE 'text%'` with the wildcards in `text` escaped, so user input matches only itself."""
    pattern = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return column.like(pattern, escape="\\")
