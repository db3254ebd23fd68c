"""The BlobStore protocol: what sync, jobs and (later) the API need from a byte store."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = ["BlobStore", "StoredBlob"]


class StoredBlob(tuple[str, int]):
    """`(hash, size)` of bytes now in the store."""

    __slots__ = ()

    @property
    def hash(self) -> str:
        return self[0]

    @property
    def size(self) -> int:
        return self[1]


class BlobStore(Protocol):
    def put_stream(
        self,
        chunks: Iterable[bytes],
        *,
        expected_hash: str | None = None,
        expected_size: int | None = None,
    ) -> StoredBlob: ...

    def put_bytes(self, data: bytes) -> StoredBlob: ...

    def exists(self, blob_hash: str) -> bool: ...

    def open(self, blob_hash: str) -> BinaryIO: ...

    def local_path(self, blob_hash: str) -> Path | None: ...

    def delete(self, blob_hash: str) -> bool: ...

    def iter_hashes(self) -> Iterator[str]: ...

    def size_of(self, blob_hash: str) -> int: ...
