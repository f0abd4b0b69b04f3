"""Routes under /v1 (spec §1.4) and the OpenAI dashboard billing views (spec §1.5)."""

from flask import jsonify

from oneapi.relay import bp, modes
from oneapi.relay.auth import authenticate
from oneapi.relay.errors import RelayError, openai_error
from oneapi.relay.pipeline import relay
from oneapi.services import routing


@bp.errorhandler(RelayError)
def _relay_error(error):
    body, status = openai_error(error.status, error.message, error.type, error.code, error.param)
    return body, status, error.headers


def _view(mode):
    def view():
        return relay(mode)

    view.__name__ = mode.name
    return view


for _mode in modes.ALL:
    bp.add_url_rule(_mode.path, view_func=_view(_mode), methods=["POST"])


@bp.post("/v1/engines/<path:model>/embeddings")
def engine_embeddings(model):
    return relay(modes.EMBEDDINGS, path_model=model)


def _not_implemented(**_):
    authenticate()
    raise RelayError(501, "API not implemented", "api_not_implemented")


for _number, (_rule, _methods) in enumerate(modes.NOT_IMPLEMENTED):
    bp.add_url_rule(_rule, endpoint=f"not_implemented_{_number}", view_func=_not_implemented, methods=_methods)
bp.add_url_rule("/v1/models/<path:model>", endpoint="delete_model", view_func=_not_implemented, methods=["DELETE"])


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
