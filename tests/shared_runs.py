"""The runs that tests of several files read, each performed once per `pytest tests` session by the shared_run
fixture (tests/conftest.py), whichever test asks first: the whole reference run under xdist, and a small run of
chat and auth cases, plain and under a broken must rule and a broken should rule, with the builtin HTML report.
Each test asserts what it is about on the same run; a test that changes a run folder works on a copy."""

from __future__ import annotations

from test_secrets import TOKEN

# the one real end-to-end run of everything, as a user runs it (two xdist workers, Allure's HTML when it is set
# up), the embedded gateway started with a token to find nowhere after; -vv: each test's line names its worker
# (tests/test_reference_run.py, tests/test_scheduling.py, tests/test_usage.py)
REFERENCE = ("run", "-n", "2", "--html", "auto", "--", "-vv")
REFERENCE_ENV = {"CONFORMANCE_REFERENCE_TOKEN": TOKEN}

# no switch: chat answers, auth refusals on every surface, malformed requests, one official client
PLAIN = ("run", "-k", "chat-system or auth or malformed or client-curl-chat-basic", "--html", "builtin")
# a broken must rule (the assistant role): failed cases, one root cause, exit 1; fewer than the console's 40
# FAILED lines (console.MAX_LINES), so that each failed case has its line
ROLE_NOT_ASSISTANT = ("run", "--deviation", "role-not-assistant", "-k", "(chat-system or auth or truncated) and claude",
                      "--html", "builtin")
# a broken should rule (usage that does not add up): warned cases, exit 0
USAGE_SUM_WRONG = ("run", "--deviation", "usage-sum-wrong", "-k", "chat-system-and-user or auth-bearer-chat",
                   "--html", "builtin")
# the usage profile alone (its marker: other cases' names hold "usage"): the tagged requests and the ai_query
# statement, looked up in the SQL warehouse
USAGE = ("run", "-m", "usage")
