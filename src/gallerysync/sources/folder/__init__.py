"""The `folder` source: a storage dir on local disk (or a mounted/cloud-synced folder).

Pure filesystem work lives here — identity (`sdid`), walking and examining files (`walk`),
recognising media (`media`). Registering what was found in the catalog is `sync.folder`'s job.
"""

from gallerysync.sources.folder.media import MediaError, MediaInfo, media_kind_for_name, probe
from gallerysync.sources.folder.sdid import SdIdentity, resolve_sd_id
from gallerysync.sources.folder.walk import Listed, WalkResult, examine, root_state, walk

KIND = "folder"

__all__ = [
    "KIND",
    "Listed",
    "MediaError",
    "MediaInfo",
    "SdIdentity",
    "WalkResult",
    "examine",
    "media_kind_for_name",
    "probe",
    "resolve_sd_id",
    "root_state",
    "walk",
]
