"""One test function; the case records and the catalog decide what runs (see conformance/cases/)."""

from conformance.plugin import run_case


def test_case(case_item, exchange, shape_check):
    run_case(case_item, exchange, shape_check)
