"""The preflight: a wrong setup ends the run before any case, and what the target does not offer is skipped.

Found trying the suite as a new user would: a wrong token gave exit 1 and hundreds of "conformance failures"
(HTTP 401 everywhere), a URL that is not a gateway took minutes of retries, a model the workspace does not serve
failed every case that selected it, and a run that judged nothing still became the next night's baseline.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from conformance.gateway.server import ThreadedGateway
from conformance.schemas import validate
from conformance.session import MODEL_NOT_SERVED

TOKEN = "preflight-token-0123456789"


@pytest.fixture
def plain_http_server(tmp_path: Path) -> Iterator[str]:
    """Not a gateway: Python's static file server (501 to every POST, HTML directory listings)."""
    (tmp_path / "index.html").write_text("<html><body>hello</body></html>")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _stopped_before_any_case(result, code: int, words: str) -> None:
    assert result.code == code, result.err
    assert result.out == "", "nothing of pytest's on the console"
    assert result.err.startswith("conformance: error: ") and result.err.count("\n") == 1, result.err
    assert words in result.err
    assert not (result.reports / "latest").exists(), "a run that judged nothing must not become the baseline"
    summary = result.summary  # the run folder still says why
    assert summary["cases"] == []
    assert validate("summary", summary) == []
    assert summary["preflight"]["requests"] <= 12  # one request per route and the listing: seconds, not minutes


def test_a_rejected_token_exits_2_with_one_line(run_cli):
    with ThreadedGateway(TOKEN) as gateway:
        result = run_cli("run", "--url", gateway.url, "--token-env", "T", env={"T": "not-the-token"})
    _stopped_before_any_case(result, 2, "the target rejects the token (HTTP 401 on POST /ai-gateway/mlflow/v1/chat")
    assert "not-the-token" not in result.err
    assert result.summary["setup_error"].startswith("the target rejects the token")


def test_a_plain_http_server_exits_3_with_one_line(run_cli, plain_http_server):
    result = run_cli("run", "--url", plain_http_server, "--token-env", "T", env={"T": TOKEN})
    _stopped_before_any_case(result, 3, "does not answer as an AI gateway")
    assert "HTTP 501" in result.err
    assert "does not answer as an AI gateway" in result.summary["unreachable"]


def test_the_plugin_path_stops_the_same_way(plain_http_server, tmp_path, capsys):
    """`pytest --pyargs conformance` is the same run: one line and the same exit status, no pytest internals."""
    import pytest as pytest_module

    code = pytest_module.main(["--pyargs", "conformance", "--gateway-url", plain_http_server, "-p", "no:cacheprovider",
                               "--conformance-reports", str(tmp_path / "reports"), "-q"])
    captured = capsys.readouterr()
    assert int(code) == 3
    assert captured.err.count("\n") == 1 and "does not answer as an AI gateway" in captured.err
    assert "_pytest" not in captured.out + captured.err and "Exit" not in captured.out + captured.err


def test_bad_input_on_the_plugin_path_is_exit_2(tmp_path, capsys):
    import pytest as pytest_module

    code = pytest_module.main(["--pyargs", "conformance", "--gateway-url", "ftp://nowhere", "-q",
                               "--conformance-reports", str(tmp_path / "reports"), "-p", "no:cacheprovider"])
    captured = capsys.readouterr()
    assert int(code) == 2
    assert captured.err == "conformance: error: --url is not an http(s) URL: 'ftp://nowhere'\n" or (
        captured.err.startswith("conformance: error: ") and captured.err.count("\n") == 1), captured.err


def test_a_route_that_answers_404_skips_its_cases(run_cli, tmp_path):
    profile = tmp_path / "t.yaml"
    profile.write_text("name: no-embeddings-here\nroutes: {embeddings: /no/such/embeddings}\n")
    result = run_cli("run", "--target", str(profile), "-k", "embeddings or chat-system-and-user")
    assert result.code == 0, result.out[-2000:]
    embeddings = [c for c in result.summary["cases"] if c["surface"] == "embeddings"]
    assert embeddings and all(c["outcome"] == "skipped" for c in embeddings)
    assert all("HTTP 404 on POST /no/such/embeddings (preflight)" in c["message"] for c in embeddings)
    assert any(c["outcome"] == "passed" for c in result.summary["cases"])
    report = yaml.safe_load((result.run_dir / "conformance-report.yaml").read_text())
    assert "embeddings" in report["models"]["routes_missing"]


@pytest.mark.parametrize("listing", [True, False], ids=["listing", "probe-per-model"])
def test_models_the_target_does_not_serve_are_skipped_and_certified_as_such(run_cli, listing):
    unserved = {"gpt-5", "claude-opus-4-1"}
    with ThreadedGateway(TOKEN, not_serving=unserved, listing=listing) as gateway:
        result = run_cli("run", "--url", gateway.url, "--token-env", "T", "-k", "chat-system-and-user or chat-multi",
                         env={"T": TOKEN})
    assert result.code == 0, result.out[-3000:]
    cases = result.summary["cases"]
    skipped = {c["model"] for c in cases if c["outcome"] == "skipped"}
    assert skipped == unserved
    assert all(c["message"].startswith(f"{MODEL_NOT_SERVED}: ") for c in cases if c["outcome"] == "skipped")
    assert result.summary["totals"]["failed"] == 0 and result.summary["totals"]["passed"] > 0
    models = result.summary["preflight"]["models"]
    assert models["source"] == ("listing" if listing else "probes")
    assert unserved <= set(models["not_served"])
    # every probe was refused (4xx): the preflight spent no tokens
    assert all(400 <= r["status"] < 500 for r in result.summary["preflight"]["routes"].values())
    report = yaml.safe_load((result.run_dir / "conformance-report.yaml").read_text())
    assert unserved <= set(report["models"]["not_served"])


def test_a_one_model_case_runs_on_a_served_model(run_cli):
    """A case that runs on the documented default model runs on another one when the default is not served."""
    with ThreadedGateway(TOKEN, not_serving={"claude-sonnet-4-5"}) as gateway:
        result = run_cli("run", "--url", gateway.url, "--token-env", "T", "-k", "chat-messages-missing",
                         env={"T": TOKEN})
    assert result.code == 0, result.out[-3000:]
    cases = result.summary["cases"]
    assert len(cases) == 1 and cases[0]["outcome"] == "passed" and cases[0]["model"] != "claude-sonnet-4-5"


def test_a_profile_model_that_is_not_served_is_one_line(run_cli, tmp_path):
    profile = tmp_path / "t.yaml"
    profile.write_text("name: mapped\nmodels: {claude-sonnet-4-5: system.ai.claude-sonnet-4-5, "
                       "gpt-5: system.ai.gpt-5}\n")
    with ThreadedGateway(TOKEN, not_serving={"gpt-5"}) as gateway:
        result = run_cli("run", "--url", gateway.url, "--token-env", "T", "--target", str(profile),
                         "-k", "chat-system-and-user", env={"T": TOKEN})
    assert result.code == 0, result.out[-3000:]
    notes = [line for line in result.out.splitlines() if "maps gpt-5" in line]
    assert len(notes) == 1 and "does not serve" in notes[0]
    outcomes = result.outcomes()
    assert outcomes["chat-system-and-user@gpt-5"] == "skipped"
    assert outcomes["chat-system-and-user@claude-sonnet-4-5"] == "passed"
