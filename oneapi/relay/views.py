"""Routes under /v1. The foundation relays the JSON text routes; the rest of the surface is the relay issue's."""

from flask import jsonify

from oneapi.relay import bp
from oneapi.relay.auth import authenticate
from oneapi.relay.errors import RelayError, openai_error
from oneapi.relay.pipeline import relay_json
from oneapi.services import routing


@bp.errorhandler(RelayError)
def _relay_error(error):
    return openai_error(error.status, error.message, error.type, error.code, error.param)


@bp.post("/v1/chat/completions")
@bp.post("/v1/completions")
@bp.post("/v1/embeddings")
def text():
    return relay_json()


def _visible_models(caller):
    group_models = routing.table().models(caller.user.group)
    if caller.token.models:
        return [m for m in caller.token.models if m in group_models]
    return group_models


def _model_object(name):
    return {"id": name, "object": "model", "created": 1626777600, "owned_by": "one-api"}


@bp.get("/v1/models")
def list_models():
    caller = authenticate()
    return jsonify({"object": "list", "data": [_model_object(m) for m in _visible_models(caller)]})


@bp.get("/v1/models/<path:model>")
def retrieve_model(model):
    caller = authenticate()
    if model not in _visible_models(caller):
        raise RelayError(404, f"The model '{model}' does not exist", "model_not_found", "invalid_request_error", "model")
    return jsonify(_model_object(model))

