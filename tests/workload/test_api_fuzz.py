"""Fuzzing: nothing a client sends makes the server (or the shared request parser) fail with a 5xx."""

from __future__ import annotations

import json

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from tests.workload.serving import MODEL_NAME, exported_version, new_store, serve_process
from workload import api

SIGNATURE = api.ModelSignature(height=4, width=4, labels=tuple("abc"))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=40,
)
KEYS = st.sampled_from(
    ["instances", "inputs", "examples", "signature_name", "b64", "images", "image", "context"]
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, trained_store):
    folder = exported_version(trained_store.store_url, MODEL_NAME, tmp_path_factory.mktemp("version"))
    with serve_process(new_store(tmp_path_factory.mktemp("fuzz-store"), folder), "--max-body-mb=1") as url:
        yield url


def test_no_request_from_the_openapi_schema_gets_a_5xx(server):
    """Schemathesis generates requests for every operation in /openapi.json (bounded examples each)."""
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 11  # 8 model operations, healthz, readyz, metrics

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
        def no_server_error(case) -> None:
            response = case.call(base_url=server)
            case.validate_response(response, checks=[not_a_server_error])

        no_server_error()


def test_the_server_is_alive_after_fuzzing(server):
    assert requests.get(f"{server}/healthz", timeout=10).status_code == 200
    assert requests.get(f"{server}/v1/models/{MODEL_NAME}", timeout=10).status_code == 200


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, JSON_VALUES, max_size=3) | JSON_VALUES)
def test_any_json_body_is_parsed_or_refused_with_a_4xx(document):
    body = json.dumps(document).encode()
    for parse in (api.parse_predict, api.parse_classify):
        try:
            parsed = parse(body, SIGNATURE)
        except api.ApiError as error:
            assert 400 <= error.status < 500
            assert error.message
        else:
            images = parsed.images if isinstance(parsed, api.PredictRequest) else parsed
            assert images.shape[1:] == SIGNATURE.input_shape


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_are_parsed_or_refused_with_a_4xx(body):
    for parse in (api.parse_predict, api.parse_classify):
        try:
            parse(body, SIGNATURE)
        except api.ApiError as error:
            assert error.status == 400


def test_version_paths_that_are_not_numbers_are_404():
    with pytest.raises(api.ApiError) as raised:
        api.parse_route(f"/v1/models/{MODEL_NAME}/versions/latest:predict")
    assert raised.value.status == 404
