"""Property-based run of schemathesis against the OpenAPI document the real server serves
(``/parapheur-ws/openapi.json``), over TLS with the demo agent's certificate: no answer may be a server error,
and every error answer has the D2 JSON shape. Bounded for CI: ``PARAFE_SCHEMATHESIS_EXAMPLES`` examples per
operation (default 12), no deadline per example, and the whole run per backend stays within a few minutes.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
requests = pytest.importorskip("requests")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from tests.api.rest.conftest import Rest  # noqa: E402
from tests.api.rest.helpers import AGENT  # noqa: E402

EXAMPLES = int(os.environ.get("PARAFE_SCHEMATHESIS_EXAMPLES", "12"))
ERROR_KEYS = {"generation", "developerMessage", "userFriendlyMessage", "errorCode"}


@pytest.fixture(scope="module")
def rest_schema(rest: Rest) -> Any:
    return schemathesis.openapi.from_url(f"{rest.server.url}/parapheur-ws/openapi.json",
                                         verify=rest.home.ca)


@pytest.fixture(scope="module")
def agent_session(rest: Rest) -> Any:
    session = requests.Session()
    session.cert = rest.home.demo(AGENT)
    session.verify = rest.home.ca
    yield session
    session.close()


def d2_error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx answer is the JSON error shape of DECISIONS D2."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{case.method} {case.formatted_path} → {response.status_code} "
                             f"{response.headers.get('content-type')}: {response.text[:300]!r}") from None
    assert isinstance(body, dict), body
    assert set(body) == ERROR_KEYS, body
    assert isinstance(body["errorCode"], int)
    assert isinstance(body["userFriendlyMessage"], str)
    return None


def test_no_server_error(rest: Rest, rest_schema: Any, agent_session: Any) -> None:
    """Every operation of the served document, ``EXAMPLES`` generated requests each (schemathesis' pytest
    plugin does not run under pytest 9, so the operations are driven through hypothesis directly)."""
    base_url = f"{rest.server.url}/parapheur-ws"
    failures: list[str] = []
    operations = 0
    calls: list[int] = []
    for result in rest_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        def run(case: Any) -> None:
            response = case.call(base_url=base_url, session=agent_session, timeout=30, verify=rest.home.ca,
                                 cert=rest.home.demo(AGENT))
            calls.append(response.status_code)
            assert response.status_code < 500, (case.method, case.formatted_path, response.status_code,
                                                response.text)
            case.validate_response(response, checks=[not_a_server_error], additional_checks=[d2_error_shape])

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then fail once
            failures.append(f"{operation.method.upper()} {operation.path}: {exc!s:.2000}")
    assert operations >= 22, operations
    assert len(calls) >= 2 * operations, len(calls)  # the run really exercised the server
    assert not failures, "\n\n".join(failures)
