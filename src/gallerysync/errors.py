"""One exception hierarchy for gallerysync.

    GallerySyncError            retryable? status
    ├── ConfigError             no         500   a setting does not validate; start-up stops
    ├── UnauthenticatedError    no         401   no valid token or session where one is needed
    ├── ForbiddenError          no         403   instance-wide state, for the local owner only
    ├── NotFoundError           no         404   a source, asset or job that does not exist
    ├── ConflictError           no         409   a name or folder already registered
    ├── InvalidInputError       no         422   bad input from a user or a client
    │   └── UnsafePathError     no         400   a path that would escape its root
    ├── StorageDirError         no         409   an SD_ID file that is malformed or foreign
    ├── SourceOfflineError      yes        503   a folder root vanished or is empty
    ├── BlobIntegrityError      no         422   bytes do not match their announced hash/size
    ├── BusyError               yes        503   another process holds the lock
    ├── PayloadTooLargeError    no         413   a request body over the limit
    ├── RemoteError             yes        502   a remote source failed (5xx, 429, reset, timeout)
    ├── RemoteRefusedError      no         502   a remote source refused (4xx): retrying won't help
    ├── MalformedResponseError  no         502   a reply that does not parse (names the field)
    └── SourceResetError        no         502   the source lost our position: reconcile fully

Each class says whether retrying can help (`retryable`) and which HTTP status the API answers
with (`status`), so callers act on the class rather than on message text.
"""

from __future__ import annotations

__all__ = [
    "BlobIntegrityError",
    "BusyError",
    "ConfigError",
    "ConflictError",
    "ForbiddenError",
    "GallerySyncError",
    "IncompleteUploadError",
    "InvalidInputError",
    "LengthRequiredError",
    "MalformedResponseError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RemoteError",
    "RemoteRefusedError",
    "SourceOfflineError",
    "SourceResetError",
    "StorageDirError",
    "UnauthenticatedError",
    "UnsafePathError",
    "UnsupportedMediaError",
]


class GallerySyncError(Exception):
    """Base class; `code` is the stable machine-readable name used in JSON errors."""

    retryable: bool = False
    status: int = 500
    code: str = "internal"


class ConfigError(GallerySyncError):
    code = "config"


class NotFoundError(GallerySyncError):
    status = 404
    code = "not_found"


class UnauthenticatedError(GallerySyncError):
    """No valid credentials (a bearer token or a session cookie) where they are required."""

    status = 401
    code = "unauthenticated"


class ForbiddenError(GallerySyncError):
    """Authenticated, but the resource is not this user's to see (instance-wide state)."""

    status = 403
    code = "forbidden"


class PayloadTooLargeError(GallerySyncError):
    status = 413
    code = "payload_too_large"


class LengthRequiredError(GallerySyncError):
    """An upload without `Content-Length`: its size must be known (and checked) up front."""

    status = 411
    code = "length_required"


class UnsupportedMediaError(GallerySyncError):
    """Uploaded bytes that are not a readable, complete image or video."""

    status = 415
    code = "unsupported_media"


class IncompleteUploadError(GallerySyncError):
    """The client stopped sending before `Content-Length` bytes arrived; nothing is stored."""

    status = 400
    code = "incomplete_upload"


class ConflictError(GallerySyncError):
    status = 409
    code = "conflict"


class InvalidInputError(GallerySyncError):
    status = 422
    code = "invalid_input"


class UnsafePathError(InvalidInputError):
    status = 400
    code = "unsafe_path"


class StorageDirError(GallerySyncError):
    status = 409
    code = "storage_dir"


class SourceOfflineError(GallerySyncError):
    retryable = True
    status = 503
    code = "source_offline"


class BlobIntegrityError(GallerySyncError):
    status = 422
    code = "blob_integrity"


class BusyError(GallerySyncError):
    retryable = True
    status = 503
    code = "busy"


class RemoteError(GallerySyncError):
    """A remote source failed in a way that may pass: a 5xx, a 429, a reset, a timeout, a
    truncated body. `retry_after` carries the server's `Retry-After`, in seconds."""

    retryable = True
    status = 502
    code = "remote"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RemoteRefusedError(GallerySyncError):
    """A remote source refused the request (a 4xx other than 408/429): the reason is recorded
    and the item is not retried until something changes. `http_status` is the remote's."""

    status = 502
    code = "remote_refused"

    def __init__(
        self, message: str, *, http_status: int | None = None, remote_code: str | None = None
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.remote_code = remote_code  # the error code of a gallerysync server's JSON reply


class MalformedResponseError(GallerySyncError):
    """A remote reply that does not have the shape its API promises; the message names the
    field. Nothing of the page it belongs to is applied."""

    status = 502
    code = "malformed_response"


class SourceResetError(GallerySyncError):
    """The source cannot continue from our cursor (a peer restored from a backup, a change
    feed compacted past it): the engine answers with a full pass, which reconciles."""

    status = 502
    code = "source_reset"
