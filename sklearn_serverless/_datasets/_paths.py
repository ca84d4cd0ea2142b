"""Where a dataset's objects are, and how their bytes are fetched.

Everything goes through three calls of Lithops' ``Storage``: ``get_object``
with a ``Range``, ``head_object`` and ``list_objects``. On Lithops' localhost
storage a path is a local file or folder instead, read by :class:`LocalFiles`,
which answers the same calls, so one code path reads both.

Worker side: imports nothing beyond the standard library.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

#: ``s3://``, ``cos://``, ``gs://``, ``file://``, ...: stripped from paths.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

#: Threads for the driver's per-object metadata reads (headers, footers).
_METADATA_THREADS = 16


class LocalFiles:
    """Local files behind the calls of Lithops' ``Storage`` that the readers use.

    The bucket is ignored; a key is an absolute file path.
    """

    backend = "localfiles"

    def get_object(self, bucket: str, key: str, stream: bool = False,
                   extra_get_args: dict | None = None) -> bytes:
        with open(key, "rb") as file:
            byte_range = (extra_get_args or {}).get("Range")
            if byte_range is None:
                return file.read()
            first, last = (int(part) for part in byte_range.replace("bytes=", "").split("-"))
            file.seek(first)
            return file.read(last - first + 1)

    def head_object(self, bucket: str, key: str) -> dict:
        if not os.path.isfile(key):
            raise FileNotFoundError(key)
        stat = os.stat(key)
        return {"content-length": str(stat.st_size), "etag": _file_version(stat)}

    def list_objects(self, bucket: str, prefix: str | None = None) -> list[dict]:
        found = []
        for folder, _, names in os.walk(prefix or "."):
            for name in names:
                path = os.path.join(folder, name)
                stat = os.stat(path)
                found.append({"Key": path, "Size": stat.st_size, "ETag": _file_version(stat)})
        return found

    def list_keys(self, bucket: str, prefix: str | None = None) -> list[str]:
        return [item["Key"] for item in self.list_objects(bucket, prefix)]


def _file_version(stat: os.stat_result) -> str:
    """A local file's version: its inode, size and times (a rewritten file
    gets new times), in place of an object's ETag."""
    return f"{stat.st_ino}-{stat.st_size}-{stat.st_mtime_ns}-{stat.st_ctime_ns}"


def object_version(meta: dict, size: int) -> str:
    """An object's version from its listing or HEAD: the ETag, else the time
    it was last modified with its size; ``''`` when the storage gives
    neither (then a worker's copy of its rows cannot be told from a newer one)."""
    etag = meta.get("ETag") or meta.get("etag")
    if etag:
        return str(etag).strip('"')
    modified = meta.get("LastModified") or meta.get("last-modified")
    return f"{modified}/{size}" if modified else ""


class Source:
    """The storage a reader fetches from, counting requests and bytes.

    Parameters
    ----------
    storage : lithops.Storage or LocalFiles
        Where the objects are.
    """

    def __init__(self, storage: Any):
        self.storage = storage
        self.requests = 0
        self.bytes_fetched = 0

    def get_range(self, bucket: str, key: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of an object, in one ranged GET (end exclusive)."""
        if stop <= start:
            return b""
        data = self.storage.get_object(
            bucket, key, extra_get_args={"Range": f"bytes={start}-{stop - 1}"})
        if hasattr(data, "read"):
            data = data.read()
        self.requests += 1
        self.bytes_fetched += len(data)
        return bytes(data)


def is_local(storage: Any) -> bool:
    """Whether paths name local files (no storage, localhost storage, or LocalFiles)."""
    return storage is None or getattr(storage, "backend", None) in ("localhost", "localfiles")


def storage_for(storage: Any, local: bool) -> Any:
    """The object to read through: :class:`LocalFiles` for local paths."""
    return LocalFiles() if local else storage


def display(bucket: str, key: str) -> str:
    """An object's name in messages: ``bucket/key``, or the local path."""
    return f"{bucket}/{key}" if bucket else key


def split_path(path: str, local: bool) -> tuple[str, str]:
    """``(bucket, key_or_prefix)`` of a path; bucket is ``''`` for local paths."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"A dataset path must be a non-empty string, got {path!r}.")
    path = _SCHEME.sub("", path)
    if local:
        return "", os.path.abspath(path) + (os.sep if path.endswith("/") else "")
    bucket, _, key = path.partition("/")
    if not bucket:
        raise ValueError(f"The path {path!r} names no bucket: write 'bucket/key' or "
                         "'bucket/prefix/'.")
    return bucket, key


def _listed(name: str) -> bool:
    """Whether an object found under a prefix is data: not a folder marker, not a
    hidden or '_'-prefixed file (``_SUCCESS``, ``.crc``), as pyarrow and Spark skip."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    return not name.endswith("/") and not base.startswith(("_", "."))


@dataclass(frozen=True)
class StoredObject:
    """One object of a dataset, as listed: bucket, key, size in bytes and
    version (see :func:`object_version`)."""

    bucket: str
    key: str
    size: int
    version: str = ""

    @property
    def name(self) -> str:
        return display(self.bucket, self.key)


def list_dataset(path: str, storage: Any, local: bool) -> list[StoredObject]:
    """The objects a path names, sorted by key.

    ``bucket/key`` is one object; ``bucket/prefix/`` (or a key with no object
    whose ``key/`` has some) every data object below it.
    """
    bucket, key = split_path(path, local)
    store = storage_for(storage, local)
    if key and not key.endswith(("/", os.sep)):
        try:
            head = store.head_object(bucket, key)
            size = int(head["content-length"])
            return [StoredObject(bucket, key, size, object_version(head, size))]
        except Exception:  # noqa: BLE001 - no such object: try it as a prefix
            key += os.sep if local else "/"
    if local and not os.path.isdir(key):
        raise ValueError(_no_local_path(path))
    try:
        listed = store.list_objects(bucket, prefix=key)
    except Exception as error:
        if _no_such_bucket(error):
            raise ValueError(
                f"No bucket {bucket!r} in the {getattr(storage, 'backend', '')} storage "
                f"(reading {path!r}): check the bucket's name, the first part of the path, "
                "and that the storage's region or endpoint in the Lithops config is the "
                "one that holds it. This is the data's bucket; Lithops' own storage_bucket "
                "may be another one, and Lithops creates that one when it is missing."
            ) from None
        raise
    found = sorted(
        (StoredObject(bucket, item["Key"], int(item["Size"]),
                      object_version(item, int(item["Size"])))
         for item in listed if _listed(item["Key"][len(key):])),
        key=lambda obj: obj.key,
    )
    if not found:
        raise ValueError(f"No data object under {path!r}.")
    return found


def _no_such_bucket(error: Exception) -> bool:
    """Whether a storage error says the bucket does not exist (botocore's
    NoSuchBucket, or the like of other clouds' libraries)."""
    response = getattr(error, "response", None)
    if isinstance(response, dict) and response.get("Error", {}).get("Code") in (
            "NoSuchBucket", "404"):
        return True
    text = str(error)
    return "NoSuchBucket" in text or "bucket does not exist" in text.lower()


def _no_local_path(path: str) -> str:
    """No such local file: and, for a path that names object storage, how to reach it."""
    message = f"No file or folder {path!r}"
    scheme = _SCHEME.match(path)
    if scheme and not path.startswith("file://"):
        return (f"{message}: with backend='localhost' (localhost storage) a path is a "
                f"local file or folder, and {scheme.group(0)!r} names object storage. To "
                "read it where it lies, fit with a backend whose Lithops config has that "
                "storage: backend='aws_lambda' (your Lithops config file) or a config dict "
                "such as {'lithops': {'backend': 'localhost', 'storage': 'aws_s3'}, "
                "'aws_s3': {...}} (workers on this machine, data in S3), with a Redis "
                "state_store.")
    return (f"{message} on this machine (backend='localhost' reads local files). For "
            "data in object storage, fit with a backend whose Lithops config has that "
            "storage (backend='aws_lambda', ... or a config dict) and a Redis state_store.")


def map_objects(function, objects: list) -> list:
    """``[function(obj) for obj in objects]`` with requests in parallel threads
    (the driver reads one header or footer per object)."""
    if len(objects) <= 1:
        return [function(obj) for obj in objects]
    with ThreadPoolExecutor(min(_METADATA_THREADS, len(objects))) as pool:
        return list(pool.map(function, objects))
