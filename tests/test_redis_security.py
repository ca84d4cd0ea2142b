"""A Redis that functions reach over a network is not open to anyone: ACL
users and passwords, TLS with a CA bundle the test makes, clear errors
before any worker starts, and the password in no message, log or repr."""

from __future__ import annotations

import logging
import subprocess
import time

import numpy as np
import pytest
from conftest import _free_port, _start_redis
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from sklearn_serverless import ServerlessKMeans
from sklearn_serverless._state import StoreSpec
from sklearn_serverless._state._redis_url import redacted, split_ca_bundle

pytestmark = pytest.mark.redis

PASSWORD = "pw-Zq8-never-shown"
DEFAULT_PASSWORD = "default-pw-Xy3-never-shown"


def _certificate(folder, name: str) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return str(cert), str(key)


@pytest.fixture(scope="module")
def secure_redis(tmp_path_factory):
    """redis-server with an ACL user limited to the store's keys, a password
    for the default user, and a TLS port with a certificate of its own."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = _certificate(folder, "server")
    stranger, _ = _certificate(folder, "stranger")
    tls_port = _free_port()
    server = _start_redis(
        args=("--user", "default", "on", f">{DEFAULT_PASSWORD}", "~*", "+@all",
              "--user", "fitter", "on", f">{PASSWORD}", "~sks:*", "+@all",
              "--tls-port", str(tls_port), "--tls-cert-file", cert, "--tls-key-file", key,
              "--tls-ca-cert-file", cert, "--tls-auth-clients", "no"),
        url=f"redis://fitter:{PASSWORD}@127.0.0.1:{{port}}/0",
    )
    server.default_url = f"redis://:{DEFAULT_PASSWORD}@127.0.0.1:{server.port}/0"
    server.tls_url = f"rediss://fitter:{PASSWORD}@127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}"
    server.stranger_url = (f"rediss://fitter:{PASSWORD}@127.0.0.1:{tls_port}/0"
                           f"?ssl_ca_certs={stranger}")
    server.untrusted_url = f"rediss://fitter:{PASSWORD}@127.0.0.1:{tls_port}/0"
    yield server
    assert server.keys() == []
    server.stop()


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(1200, 4, centers=3, random_state=0)
    return X, X[[0, 400, 800]].copy()


@pytest.mark.parametrize("which", ["acl", "default", "tls"])
def test_fit_with_credentials_and_tls(secure_redis, blobs, which, caplog, capsys,
                                      leaves_nothing):
    url = {"acl": secure_redis.url, "default": secure_redis.default_url,
           "tls": secure_redis.tls_url}[which]
    X, init = blobs
    caplog.set_level(logging.DEBUG)
    model = ServerlessKMeans(3, init=init, n_workers=2, state_store=url, verbose=1,
                             timeout=30).fit(X)
    reference = KMeans(3, init=init, n_init=1).fit(X)
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, rtol=1e-10)
    printed = capsys.readouterr()
    assert "Iteration" in printed.out or "iteration" in printed.out.lower()
    for text in (caplog.text, printed.out, printed.err, repr(model), model._repr_html_(),
                 str(model._repr_mimebundle_())):
        assert PASSWORD not in text and DEFAULT_PASSWORD not in text
    assert (":***@" if which == "default" else "fitter:***@") in repr(model)


@pytest.mark.parametrize("url, expected", [
    (f"redis://fitter:wrong-{PASSWORD}@127.0.0.1:{{port}}/0", "refused the credentials"),
    ("redis://127.0.0.1:{port}/0", "needs a user and password"),
])
def test_wrong_credentials_fail_before_any_worker(secure_redis, blobs, url, expected,
                                                  leaves_nothing):
    X, init = blobs
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=expected) as info:
        ServerlessKMeans(3, init=init, n_workers=2, timeout=30,
                         state_store=url.format(port=secure_redis.port)).fit(X)
    assert time.monotonic() - started < 5
    assert PASSWORD not in str(info.value)
    assert "***@" in str(info.value) or "fitter" not in url


@pytest.mark.parametrize("which", ["stranger", "untrusted"])
def test_untrusted_certificate_fails_before_any_worker(secure_redis, blobs, which,
                                                      leaves_nothing):
    url = secure_redis.stranger_url if which == "stranger" else secure_redis.untrusted_url
    X, init = blobs
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="TLS handshake failed.*ssl_ca_certs") as info:
        ServerlessKMeans(3, init=init, n_workers=2, state_store=url, timeout=30).fit(X)
    assert time.monotonic() - started < 5
    assert PASSWORD not in str(info.value)


def test_a_missing_ca_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read the CA bundle"):
        split_ca_bundle(f"rediss://h:1/0?ssl_ca_certs={tmp_path}/none.pem")
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ValueError, match="holds no PEM certificate"):
        split_ca_bundle(f"rediss://h:1/0?ssl_ca_certs={tmp_path}/junk.pem")


def test_the_ca_bundle_travels_as_text_and_passwords_stay_out_of_reprs(secure_redis):
    url, pem = split_ca_bundle(secure_redis.tls_url)
    assert "ssl_ca_certs" not in url and pem.startswith("-----BEGIN CERTIFICATE-----")
    spec = StoreSpec("redis", url, "ns", 2, ca_data=pem)
    assert PASSWORD not in repr(spec) and "BEGIN" not in repr(spec)
    assert redacted(f"x redis://u:{PASSWORD}@h:1/0 y rediss://:{PASSWORD}@h/0") == (
        "x redis://u:***@h:1/0 y rediss://:***@h/0")
    assert redacted("redis://h:1/0") == "redis://h:1/0"


def test_a_cloud_pool_with_an_acl_user_and_tls(pools_on, secure_redis, moto_server, blobs,
                                               caplog, leaves_nothing):
    # A pool off this machine's files waits on Redis lists under sks:*: the
    # ACL user of the fits is enough, over TLS with the CA bundle sent along.
    from sklearn_serverless import config_context, shutdown_workers
    from sklearn_serverless._driver import _pool

    bucket = moto_server.create_bucket("sks-secure-pool")
    config = {"lithops": {"backend": "localhost", "storage": "minio"},
              "minio": moto_server.storage_config(bucket)}
    X, init = blobs
    reference = KMeans(3, init=init, n_init=1).fit(X)
    caplog.set_level(logging.DEBUG)
    with config_context(worker_pool=True):
        for _ in range(2):
            model = ServerlessKMeans(3, init=init, n_workers=2, backend=config, timeout=30,
                                     state_store=secure_redis.tls_url).fit(X)
            np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_,
                                       rtol=1e-10)
    assert len(_pool._pools) == 1 and _pool._pools[0].jobs == 2
    shutdown_workers()
    assert [key for key in moto_server.keys(bucket) if "lithops.runtimes" not in key] == []
    assert PASSWORD not in caplog.text
