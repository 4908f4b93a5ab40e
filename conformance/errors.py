"""Exception types whose class decides how a problem is reported (exit 2, pytest error, pytest failure)."""


class BadInput(Exception):
    """Wrong configuration or flags: the CLI prints one line and exits 2, never a traceback."""


class InfrastructureError(Exception):
    """The target could not give an answer about the contract (timeout, reset, 429, 5xx after retries).

    Raised during case setup so pytest reports an *error*, never a *failure*: a verdict must not blame a
    gateway for the network.
    """
