"""Azure Functions app (Python v2 programming model): one HTTP trigger on every path.

host.json sets an empty route prefix, so the paths are TF Serving's own (`/v1/models/...`).
"""

from __future__ import annotations

import logging
import os

import azure.functions as func

from workload.functions import shared_predictor
from workload.predictor import Reply

log = logging.getLogger(__name__)

# Function keys unless the stack deploys a public endpoint (infra sets FUNCTION_AUTH_LEVEL=anonymous).
PUBLIC = os.environ.get("FUNCTION_AUTH_LEVEL", "function").lower() == "anonymous"
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS if PUBLIC else func.AuthLevel.FUNCTION)


@app.route(route="{*path}", methods=["GET", "POST"])
def predict(req: func.HttpRequest) -> func.HttpResponse:
    """HTTP trigger: the predictor's reply as an HttpResponse."""
    path = "/" + (req.route_params.get("path") or "")
    try:
        reply = shared_predictor().handle(req.method, path, req.get_body())
    except Exception:
        log.exception("cannot answer %s %s", req.method, path)
        reply = Reply(500, {"error": "internal server error; see the function log"})
    return func.HttpResponse(reply.body, status_code=reply.status, mimetype="application/json")
