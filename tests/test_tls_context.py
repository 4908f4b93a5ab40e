"""The TLS context the transports share (client.ssl_context): one per process and settings, never one setting's
context for another's. Sharing it saves loading the CA bundle for every transport (each client case builds one)."""

from __future__ import annotations

import ssl

import certifi
import httpx
import pytest

from conformance.client import ssl_context


def test_a_verifying_context_verifies_and_is_shared():
    context = ssl_context(httpx, True)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded
    assert ssl_context(httpx, True) is context


def test_insecure_is_another_context_and_verifies_nothing():
    insecure = ssl_context(httpx, False)
    assert insecure is not ssl_context(httpx, True)
    assert insecure.verify_mode == ssl.CERT_NONE and not insecure.check_hostname
    assert ssl_context(httpx, True).verify_mode == ssl.CERT_REQUIRED  # the verifying one is untouched


def test_another_ca_bundle_in_the_environment_is_another_context(monkeypatch: pytest.MonkeyPatch, tmp_path):
    default = ssl_context(httpx, True)
    first = certifi.contents().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    bundle = tmp_path / "one-ca.pem"
    bundle.write_text(first)
    with monkeypatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(bundle))  # httpx reads it when it makes a context: so it is made again
        other = ssl_context(httpx, True)
    assert other is not default and other.cert_store_stats()["x509_ca"] == 1
    assert default.cert_store_stats()["x509_ca"] > 1
    assert ssl_context(httpx, True) is default  # the environment as it was: the context as it was
