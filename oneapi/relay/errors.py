"""Errors in OpenAI's shape, which every SDK understands: {"error": {message, type, param, code}}."""

import re

from flask import g, jsonify


class RelayError(Exception):
    def __init__(self, status, message, code="", type="one_api_error", param="", headers=None):
        super().__init__(message)
        self.headers = headers or {}
        self.status = status
        self.message = message
        self.code = code
        self.type = type
        self.param = param


def error_body(message, type="one_api_error", code="", param="", request_id=None):
    if request_id is None:
        request_id = g.get("request_id", "")
    if request_id:
        message = f"{message} (request id: {request_id})"
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def openai_error(status, message, type="one_api_error", code="", param=""):
    return jsonify(error_body(message, type, code, param)), status


_SECRETISH = [
    (re.compile(r"https?://[^\s\"'<>]+"), "[upstream]"),
    (re.compile(r"\b(sk|key|api[-_]?key)[-_][A-Za-z0-9*_.-]{4,}", re.IGNORECASE), "[redacted]"),
    (re.compile(r"\b[A-Za-z0-9_-]{32,}\b"), "[redacted]"),
]


def scrub(message, secrets=()):
    """An upstream's message without anything that could be a key, a key fragment or an upstream URL."""
    message = str(message)
    for secret in secrets:
        if secret:
            message = message.replace(secret, "[redacted]")
    for pattern, replacement in _SECRETISH:
        message = pattern.sub(replacement, message)
    return message[:2000]
