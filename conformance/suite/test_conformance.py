"""Two test functions; the case records and the catalog decide what runs (conformance/cases/, client_cases/).

The session (conformance/session.py) parametrises them with one item per case and model, and performs each
item's requests (ahead of the test, in helper processes, or now); the bodies are in conformance/suite/bodies.py.
"""

import pytest

from conformance.session import performed
from conformance.suite.bodies import run_case, run_client_case, shape_check


@pytest.fixture
def exchange(case_item, request):
    """The answer(s) to the case's request(s): setup, so an infrastructure problem is an error, not a failure."""
    result = performed(request, "case", case_item)
    assert result.exchange is not None
    return result.exchange


@pytest.fixture
def client_result(client_item, request):
    """The documented client example's result (or its verdict, when a helper process judged it)."""
    return performed(request, "client", client_item)


def test_case(case_item, exchange, snapshot, request):
    run_case(case_item, exchange, request, shape_check(snapshot, request))


def test_client_case(client_item, client_result, request):
    run_client_case(client_item, client_result, request)
