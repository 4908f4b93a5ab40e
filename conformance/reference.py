"""Names the suite and the reference gateway's own process share. A module of constants only: the gateway
process (`python -m conformance.gateway`) imports it without the suite's configuration, schemas or pytest."""

from __future__ import annotations

REFERENCE_TOKEN_ENV = "CONFORMANCE_REFERENCE_TOKEN"  # the variable that holds the token the gateway accepts
DEV_TOKEN = "reference-token"  # accepted by `conformance serve` when that variable is unset
# The SQL warehouse of the reference gateway (conformance/gateway/sql.py)
REFERENCE_WAREHOUSE_ID = "0123456789abcdef"
