"""AWS Lambda handler for Function URL and API Gateway HTTP API events (payload format 2.0)."""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from workload import api
from workload.functions import shared_predictor
from workload.predictor import Reply

log = logging.getLogger(__name__)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: `workload.functions.aws.handler`."""
    try:
        reply = shared_predictor().handle(_method(event), event.get("rawPath") or "/", _body(event))
    except api.ApiError as error:
        reply = Reply.error(error)
    except Exception:
        log.exception("cannot answer the Lambda event")
        reply = Reply(500, {"error": "internal server error; see the function log"})
    return {
        "statusCode": reply.status,
        "headers": {"Content-Type": "application/json"},
        "body": reply.body.decode(),
        "isBase64Encoded": False,
    }


def _method(event: dict[str, Any]) -> str:
    return str(event.get("requestContext", {}).get("http", {}).get("method", "GET"))


def _body(event: dict[str, Any]) -> bytes:
    """The raw request body; Function URLs and HTTP APIs base64-encode binary bodies."""
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return body.encode()
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise api.bad_request("the event body is marked base64 but is not valid base64") from None
