"""Deleting objects through a Lithops ``Storage``, for every backend."""

from __future__ import annotations

_PRUNE_FOLDERS = """
for i = 1, #KEYS - 1 do
  if redis.call('exists', KEYS[i]) == 1 then return i end
  redis.call('srem', KEYS[i + 1], string.sub(KEYS[i], #KEYS[i + 1] + 1))
end
return 0
"""


def delete_storage_objects(storage, bucket: str, keys: list[str]) -> None:
    """Delete ``keys`` from a Lithops ``Storage``, and on Redis storage the
    folder sets they leave empty."""
    if not keys:
        return
    storage.delete_objects(bucket, keys)
    if storage.backend != "redis":
        return
    client = storage.get_client()
    folders = {f"{bucket}/{key}".rsplit("/", 1)[0] + "/" for key in keys}
    pipe = client.pipeline(transaction=False)
    for folder in folders:
        parts = folder.rstrip("/").split("/")
        chain = ["/".join(parts[:i]) + "/" for i in range(len(parts), 0, -1)]
        pipe.eval(_PRUNE_FOLDERS, len(chain), *chain)
    pipe.execute()
