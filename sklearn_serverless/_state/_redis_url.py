"""Redis URLs: connecting with a password and TLS, and keeping the password
out of every message.

``redis://[user:password@]host:port/db`` (an ACL user, or ``:password@`` for
``requirepass``) or ``rediss://...`` for TLS. A CA bundle to trust is given as
the URL's query ``?ssl_ca_certs=/path/to/ca.pem``: the driver reads the file
and the PEM text travels with the fit to every worker (a cloud function has
no copy of the user's file). Other redis-py URL options pass through.
"""

from __future__ import annotations

import inspect
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._common._metering import count_redis

_CA_OPTION = "ssl_ca_certs"
#: ``scheme://user:password@`` -> the password part.
_PASSWORD = re.compile(r"(\b(?:redis|rediss|unix)://[^:/@\s]*:)[^@\s]*@")


def redacted(text: str) -> str:
    """``text`` with the password of every Redis URL in it replaced by ``***``."""
    return _PASSWORD.sub(r"\1***@", text)


def split_ca_bundle(url: str) -> tuple[str, str | None]:
    """The URL without its ``ssl_ca_certs`` option, and the PEM text of that
    CA bundle (None without one). ValueError when the file cannot be read."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    paths = [value for name, value in query if name == _CA_OPTION]
    if not paths:
        return url, None
    try:
        with open(paths[-1], encoding="ascii") as file:
            pem = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the CA bundle {paths[-1]!r} of the Redis state store "
                         f"({type(exc).__name__}: {exc.strerror or exc})") from None
    if "BEGIN CERTIFICATE" not in pem:
        raise ValueError(f"the CA bundle {paths[-1]!r} of the Redis state store holds no "
                         "PEM certificate")
    rest = urlencode([(name, value) for name, value in query if name != _CA_OPTION])
    return urlunsplit(parts._replace(query=rest)), pem


def connect(url: str, timeout: float, ca_data: str | None = None):
    """A redis-py client for ``url`` whose blocking reads outlast ``timeout``."""
    import redis

    from .._common._deadlines import Deadlines

    deadlines = Deadlines.from_timeout(timeout)
    options = {"socket_timeout": deadlines.socket, "socket_connect_timeout": deadlines.connect}
    if ca_data is not None:
        options["ssl_ca_data"] = ca_data
    # Neither CLIENT SETINFO nor CLIENT MAINT_NOTIFICATIONS: three commands
    # more per connection, billed, and refused by servers before Redis 7.2.
    parameters = {name for klass in redis.Connection.__mro__ if "__init__" in vars(klass)
                  for name in inspect.signature(klass.__init__).parameters}
    if "driver_info" in parameters:
        options["driver_info"] = None
    else:
        options.update(lib_name=None, lib_version=None)
    if "maint_notifications_config" in parameters:
        from redis.maint_notifications import MaintNotificationsConfig

        options["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    client = redis.Redis.from_url(url, **options)
    count_redis(client)  # what a fit costs counts its commands
    return client
