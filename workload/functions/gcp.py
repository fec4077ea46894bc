"""Google Cloud Functions (gen2) HTTP function: `functions-framework --target predict`."""

from __future__ import annotations

import logging

import flask
import functions_framework

from workload.functions import shared_predictor
from workload.predictor import Reply

log = logging.getLogger(__name__)


@functions_framework.http
def predict(request: flask.Request) -> tuple[bytes, int, dict[str, str]]:
    """HTTP entry point: the predictor's reply as (body, status, headers)."""
    try:
        reply = shared_predictor().handle(request.method, request.path, request.get_data())
    except Exception:
        log.exception("cannot answer %s %s", request.method, request.path)
        reply = Reply(500, {"error": "internal server error; see the function log"})
    return reply.body, reply.status, {"Content-Type": "application/json"}
