"""Two test functions; the case records and the catalog decide what runs (conformance/cases/, client_cases/)."""

from conformance.plugin import run_case, run_client_case


def test_case(case_item, exchange, shape_check):
    run_case(case_item, exchange, shape_check)


def test_client_case(client_item, client_result):
    run_client_case(client_item, client_result)
