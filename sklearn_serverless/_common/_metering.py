"""Counting the requests a process makes: storage requests through a Lithops
``Storage`` and commands sent to Redis, for what a fit costs (see
:mod:`sklearn_serverless._driver._cost`).

Counters are per process and only grow; a worker or a driver reads them
before and after its part of a fit and reports the difference.
"""

from __future__ import annotations

import threading

#: Storage request classes, as object stores price them.
STORAGE_KINDS = ("GET", "PUT", "LIST", "HEAD", "DELETE")

#: S3 API operations (botocore names) -> request class.
_S3_OPERATIONS = {
    "GetObject": "GET", "PutObject": "PUT", "ListObjectsV2": "LIST", "ListObjects": "LIST",
    "ListBuckets": "LIST", "HeadObject": "HEAD", "HeadBucket": "HEAD",
    "DeleteObject": "DELETE", "DeleteObjects": "DELETE", "CreateBucket": "PUT",
    "CopyObject": "PUT", "CreateMultipartUpload": "PUT", "UploadPart": "PUT",
    "CompleteMultipartUpload": "PUT", "AbortMultipartUpload": "DELETE",
}
#: Lithops storage handler methods -> request class (backends without a
#: boto3 client, where each method is one request).
_METHODS = {
    "get_object": "GET", "download_file": "GET", "put_object": "PUT", "upload_file": "PUT",
    "list_objects": "LIST", "list_keys": "LIST", "head_object": "HEAD", "head_bucket": "HEAD",
    "delete_object": "DELETE", "delete_objects": "DELETE",
}

_lock = threading.Lock()
_counts: dict[str, int] = dict.fromkeys((*STORAGE_KINDS, "redis"), 0)


def _add(kind: str, n: int = 1) -> None:
    with _lock:
        _counts[kind] += n


def snapshot() -> dict[str, int]:
    """This process's requests so far, by kind (``'redis'``: Redis commands)."""
    with _lock:
        return dict(_counts)


def since(before: dict[str, int]) -> dict[str, int]:
    """Requests made since ``before`` (a :func:`snapshot`)."""
    now = snapshot()
    return {kind: now[kind] - before.get(kind, 0) for kind in now}


def count_storage(storage) -> None:
    """Count the requests made through a Lithops ``Storage`` (or
    ``InternalStorage``) from now on, once per handler. Object stores with
    a boto3 client count each API call (pages of a listing included);
    others each handler method. Files on this machine (``localhost``
    storage) are not requests: not counted."""
    storage = getattr(storage, "storage", storage)  # InternalStorage -> Storage
    handler = getattr(storage, "storage_handler", None)
    if handler is None or getattr(storage, "backend", None) == "localhost":
        return
    with _lock:
        if getattr(handler, "_sks_counted", False):
            return
        handler._sks_counted = True
    client = getattr(handler, "s3_client", None) or getattr(handler, "cos_client", None)
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is not None:
        events.register("before-call.s3", _on_s3_call)
        return
    for name, kind in _METHODS.items():
        method = getattr(handler, name, None)
        if method is not None:
            setattr(handler, name, _counted(method, kind))


def _on_s3_call(model=None, **_) -> None:
    kind = _S3_OPERATIONS.get(getattr(model, "name", ""), "GET")
    _add(kind)


def _counted(method, kind: str):
    def call(*args, **kwargs):
        _add(kind)
        return method(*args, **kwargs)
    return call


def count_redis(client) -> None:
    """Count every command ``client`` (redis-py) sends from now on, its
    connections' handshakes and pipelined commands included, as the
    server's ``INFO commandstats`` does (a script counts as one command)."""
    pool = client.connection_pool
    pool.connection_class = _counting_class(pool.connection_class)


_classes: dict[type, type] = {}


def _counting_class(base: type) -> type:
    if getattr(base, "_sks_counting", False):
        return base
    with _lock:
        if base not in _classes:
            def send_command(self, *args, **kwargs):
                _add("redis")
                return base.send_command(self, *args, **kwargs)

            def pack_commands(self, commands):
                commands = list(commands)
                _add("redis", len(commands))
                return base.pack_commands(self, commands)

            _classes[base] = type(f"Counting{base.__name__}", (base,), {
                "_sks_counting": True, "send_command": send_command,
                "pack_commands": pack_commands})
        return _classes[base]
