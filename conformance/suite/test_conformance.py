"""Three test functions; the case records and the catalog decide what runs (conformance/cases/, client_cases/,
usage_cases/).

The session (conformance/session.py) parametrises the first two with one item per case and model, and performs
each item's requests (ahead of the test, in helper processes, or now); the bodies are in conformance/suite/bodies.py.
The usage cases (conformance/usage_plugin.py) are parametrised, performed and looked up by the usage plugin, which
the session activates; their body concludes as every case's does.
"""

import pytest

from conformance.session import performed
from conformance.suite.bodies import run_case, run_client_case, shape_check
from conformance.usage_plugin import run_usage_case, usage_verdict_of


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


@pytest.fixture
def usage_verdict(usage_item, request):
    """The usage case's verdict (its rows looked up, polling within --usage-wait): setup, so a pending row or an
    unusable warehouse is an error, not a failure."""
    return usage_verdict_of(usage_item, request)


def test_case(case_item, exchange, snapshot, request):
    run_case(case_item, exchange, request, shape_check(snapshot, request))


def test_client_case(client_item, client_result, request):
    run_client_case(client_item, client_result, request)


def test_usage_case(usage_item, usage_verdict, request):
    run_usage_case(usage_item, usage_verdict, request)
