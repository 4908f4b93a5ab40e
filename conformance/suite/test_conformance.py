"""Three test functions; the case records and the catalog decide what runs (conformance/cases/, client_cases/,
usage_cases/)."""

from conformance.plugin import run_case, run_client_case, shape_check
from conformance.usage_plugin import run_usage_case


def test_case(case_item, exchange, snapshot, request):
    run_case(case_item, exchange, request, shape_check(snapshot, request))


def test_client_case(client_item, client_result, request):
    run_client_case(client_item, client_result, request)


def test_usage_case(usage_item, usage_verdict, request):
    run_usage_case(usage_item, usage_verdict, request)
