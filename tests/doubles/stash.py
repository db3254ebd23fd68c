"""A test double of Stash's GraphQL API (stashapp/stash), served by a real uvicorn on 127.0.0.1.

The GraphQL layer is real: `graphql-core` parses, validates and executes queries against an SDL
that is a subset of Stash's own (field and argument names and types copied from it), so a query
that Stash would reject for its shape is rejected here too. The data is in memory and is edited
through Python methods that reproduce what Stash's mutations do to rows and timestamps.

Real code followed (see docs/research/stash-api.md for the quotes and commits):

- `graphql/schema/schema.graphql`: `findImages(image_filter, image_ids, ids, filter)`,
  `findScenes`, `findGalleries`, `findTags`, `findPerformers`, `findStudios`, `findGroups`, the
  single lookups (`findImage(id)`, …) and `Subscription.scanCompleteSubscribe: Boolean!`;
- `graphql/schema/types/{image,gallery,scene,tag,performer,studio,group,file,filters}.graphql`:
  the object types, `FindFilterType`, `TimestampCriterionInput`, `MultiCriterionInput`,
  `CriterionModifier`, `SortDirectionEnum`;
- `pkg/models/find_filter.go`: `per_page` defaults to 25, any negative value means all rows,
  0 gives an empty page whose `count` is still filled, `page` defaults to 1;
- `pkg/sqlite/sql.go` `sortOptions.validateSort`: a sort outside the type's whitelist is the
  resolver error `invalid sort: <x>` (HTTP 200, `data: null`);
- `pkg/sqlite/image.go` `setImageSortAndPagination` (and the gallery/scene equivalents): no
  sort means no ORDER BY — the double returns those rows in a fresh random order each time;
  tags, performers, studios and groups default to `name ASC`;
- `pkg/sqlite/sql.go` `getTimestampWhereClause`: `updated_at > ?` with the value bound as given
  and compared as TEXT against RFC 3339 strings stored in the server's local time at second
  precision (`pkg/sqlite/timestamp.go`, `TimestampFormat = time.RFC3339`);
- `pkg/sqlite/image.go` `FindMany`: `ids` bypasses filter and paging, and one missing id fails
  the query with `image with id N not found`;
- `pkg/sqlite/table.go` `destroy`: deletes are physical, join rows go with them;
- `pkg/sqlite/tag.go` `TagStore.Merge`: links are rewritten to the destination, the sources are
  deleted and no image/gallery/scene `updated_at` moves;
- `pkg/gallery/update.go` `AddImages`/`RemoveImages` (#3759): only the gallery's `updated_at`;
- `pkg/session/session.go` `Authenticate`: the `ApiKey` header or `apikey` query parameter; a
  wrong key is 401 with an empty body (`internal/api/authentication.go`);
- `internal/api/urlbuilders/image.go`: `paths.image` = `<base>/image/<id>/image?t=<unix>`,
  `paths.thumbnail` = `<base>/image/<id>/thumbnail?t=<unix>`; scenes
  (`urlbuilders/scene.go`): `screenshot` `?t=`, `stream` without;
- gqlgen `transport/http_post.go` `statusFor`: parse/validation errors are 422 with
  `extensions.code`; an undecodable body is 400; `websocket_subprotocol.go`: `/graphql` speaks
  `graphql-transport-ws` (and `graphql-ws`, the default when the client names none).

The double's own deviations: mutations are Python methods, not GraphQL; media bytes are
generated PNGs (images) and a minimal MP4 header (scenes); HTTP byte responses carry
Last-Modified and Content-Length like Go's `http.ServeContent`, no ETag.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn
from graphql import (
    GraphQLError,
    build_schema,
    execute,
    parse,
    validate,
)
from PIL import Image
from starlette.types import Receive, Scope, Send

from tests.doubles.comfyui import _WebSocketProtocol

__all__ = ["StashDouble"]

SDL = """
scalar Time
scalar Int64
scalar Map

enum SortDirectionEnum { ASC DESC }
enum CriterionModifier {
  EQUALS NOT_EQUALS GREATER_THAN LESS_THAN IS_NULL NOT_NULL INCLUDES_ALL INCLUDES EXCLUDES
  MATCHES_REGEX NOT_MATCHES_REGEX BETWEEN NOT_BETWEEN
}
input FindFilterType { q: String page: Int per_page: Int sort: String direction: SortDirectionEnum }
input TimestampCriterionInput { value: String! value2: String modifier: CriterionModifier! }
input MultiCriterionInput { value: [ID!] modifier: CriterionModifier! excludes: [ID!] }
input IntCriterionInput { value: Int! value2: Int modifier: CriterionModifier! }

input ImageFilterType {
  AND: ImageFilterType OR: ImageFilterType NOT: ImageFilterType
  id: IntCriterionInput galleries: MultiCriterionInput
  created_at: TimestampCriterionInput updated_at: TimestampCriterionInput
}
input SceneFilterType {
  AND: SceneFilterType OR: SceneFilterType NOT: SceneFilterType
  id: IntCriterionInput galleries: MultiCriterionInput
  created_at: TimestampCriterionInput updated_at: TimestampCriterionInput
}
input GalleryFilterType {
  AND: GalleryFilterType OR: GalleryFilterType NOT: GalleryFilterType
  id: IntCriterionInput created_at: TimestampCriterionInput updated_at: TimestampCriterionInput
}
input TagFilterType {
  AND: TagFilterType OR: TagFilterType NOT: TagFilterType
  created_at: TimestampCriterionInput updated_at: TimestampCriterionInput
}
input PerformerFilterType {
  AND: PerformerFilterType OR: PerformerFilterType NOT: PerformerFilterType
  created_at: TimestampCriterionInput updated_at: TimestampCriterionInput
}
input StudioFilterType {
  AND: StudioFilterType OR: StudioFilterType NOT: StudioFilterType
  created_at: TimestampCriterionInput updated_at: TimestampCriterionInput
}
input GroupFilterType {
  AND: GroupFilterType OR: GroupFilterType NOT: GroupFilterType
  created_at: TimestampCriterionInput updated_at: TimestampCriterionInput
}

type Fingerprint { type: String! value: String! }
interface BaseFile {
  id: ID! path: String! basename: String! mod_time: Time! size: Int64!
  fingerprints: [Fingerprint!]! created_at: Time! updated_at: Time!
}
type ImageFile implements BaseFile {
  id: ID! path: String! basename: String! mod_time: Time! size: Int64!
  fingerprint(type: String!): String fingerprints: [Fingerprint!]!
  format: String! width: Int! height: Int! created_at: Time! updated_at: Time!
}
type VideoFile implements BaseFile {
  id: ID! path: String! basename: String! mod_time: Time! size: Int64!
  fingerprint(type: String!): String fingerprints: [Fingerprint!]!
  format: String! width: Int! height: Int! duration: Float! video_codec: String!
  audio_codec: String! frame_rate: Float! bit_rate: Int! created_at: Time! updated_at: Time!
}
union VisualFile = VideoFile | ImageFile

type ImagePathsType { thumbnail: String preview: String image: String }
type Image {
  id: ID! title: String code: String rating100: Int urls: [String!]! date: String
  details: String photographer: String o_counter: Int organized: Boolean!
  created_at: Time! updated_at: Time! visual_files: [VisualFile!]! paths: ImagePathsType!
  galleries: [Gallery!]! studio: Studio tags: [Tag!]! performers: [Performer!]!
}
type GalleryPathsType { cover: String! preview: String! }
type Gallery {
  id: ID! title: String code: String urls: [String!]! date: String details: String
  photographer: String rating100: Int organized: Boolean! created_at: Time! updated_at: Time!
  scenes: [Scene!]! studio: Studio image_count: Int! tags: [Tag!]! performers: [Performer!]!
  paths: GalleryPathsType!
}
type ScenePathsType { screenshot: String preview: String stream: String webp: String }
type SceneGroup { group: Group! scene_index: Int }
type Scene {
  id: ID! title: String code: String details: String director: String urls: [String!]!
  date: String rating100: Int organized: Boolean! o_counter: Int created_at: Time!
  updated_at: Time! files: [VideoFile!]! paths: ScenePathsType! galleries: [Gallery!]!
  studio: Studio groups: [SceneGroup!]! tags: [Tag!]! performers: [Performer!]!
}
type Tag {
  id: ID! name: String! description: String aliases: [String!]! ignore_auto_tag: Boolean!
  created_at: Time! updated_at: Time! favorite: Boolean! image_path: String
  image_count(depth: Int): Int! parents: [Tag!]! children: [Tag!]!
}
type Performer {
  id: ID! name: String! disambiguation: String urls: [String!] birthdate: String
  alias_list: [String!]! favorite: Boolean! tags: [Tag!]! image_path: String
  image_count: Int! rating100: Int details: String created_at: Time! updated_at: Time!
}
type Studio {
  id: ID! name: String! parent_studio: Studio child_studios: [Studio!]! aliases: [String!]!
  tags: [Tag!]! ignore_auto_tag: Boolean! image_path: String rating100: Int favorite: Boolean!
  details: String created_at: Time! updated_at: Time!
}
type Group {
  id: ID! name: String! aliases: String duration: Int date: String rating100: Int
  studio: Studio director: String synopsis: String urls: [String!]! tags: [Tag!]!
  created_at: Time! updated_at: Time! scene_count(depth: Int): Int!
}

type FindImagesResultType { count: Int! megapixels: Float! filesize: Float! images: [Image!]! }
type FindScenesResultType { count: Int! duration: Float! filesize: Float! scenes: [Scene!]! }
type FindGalleriesResultType { count: Int! galleries: [Gallery!]! }
type FindTagsResultType { count: Int! tags: [Tag!]! }
type FindPerformersResultType { count: Int! performers: [Performer!]! }
type FindStudiosResultType { count: Int! studios: [Studio!]! }
type FindGroupsResultType { count: Int! groups: [Group!]! }

type Query {
  findImages(
    image_filter: ImageFilterType, image_ids: [Int!], ids: [ID!], filter: FindFilterType
  ): FindImagesResultType!
  findImage(id: ID, checksum: String): Image
  findScenes(
    scene_filter: SceneFilterType, scene_ids: [Int!], ids: [ID!], filter: FindFilterType
  ): FindScenesResultType!
  findScene(id: ID, checksum: String): Scene
  findGalleries(
    gallery_filter: GalleryFilterType, filter: FindFilterType, ids: [ID!]
  ): FindGalleriesResultType!
  findGallery(id: ID!): Gallery
  findTags(tag_filter: TagFilterType, filter: FindFilterType, ids: [ID!]): FindTagsResultType!
  findTag(id: ID!): Tag
  findPerformers(
    performer_filter: PerformerFilterType, filter: FindFilterType, performer_ids: [Int!],
    ids: [ID!]
  ): FindPerformersResultType!
  findPerformer(id: ID!): Performer
  findStudios(
    studio_filter: StudioFilterType, filter: FindFilterType, ids: [ID!]
  ): FindStudiosResultType!
  findStudio(id: ID!): Studio
  findGroups(
    group_filter: GroupFilterType, filter: FindFilterType, ids: [ID!]
  ): FindGroupsResultType!
  findGroup(id: ID!): Group
}
type Subscription { scanCompleteSubscribe: Boolean! }
"""

# Sort whitelists (pkg/sqlite/*.go `*SortOptions`), trimmed to the columns the double has.
_SORTS = {
    "image": {"created_at", "date", "id", "path", "random", "rating", "title", "updated_at"},
    "gallery": {"created_at", "date", "id", "path", "random", "rating", "title", "updated_at"},
    "scene": {"created_at", "date", "id", "path", "random", "rating", "title", "updated_at"},
    "tag": {"created_at", "id", "name", "random", "updated_at"},
    "performer": {"created_at", "id", "name", "random", "rating", "updated_at"},
    "studio": {"created_at", "id", "name", "random", "rating", "updated_at"},
    "group": {"created_at", "id", "name", "random", "rating", "updated_at"},
}
_UNORDERED = {"image", "gallery", "scene"}  # no sort → no ORDER BY
_FILTER_ARG = {
    "image": "image_filter",
    "scene": "scene_filter",
    "gallery": "gallery_filter",
    "tag": "tag_filter",
    "performer": "performer_filter",
    "studio": "studio_filter",
    "group": "group_filter",
}
_PLURAL = {
    "image": "images",
    "scene": "scenes",
    "gallery": "galleries",
    "tag": "tags",
    "performer": "performers",
    "studio": "studios",
    "group": "groups",
}
_LINKS = {  # (type, link name) → target type; the join tables of pkg/sqlite
    "image": {"galleries": "gallery", "tags": "tag", "performers": "performer"},
    "scene": {"galleries": "gallery", "tags": "tag", "performers": "performer"},
    "gallery": {"tags": "tag", "performers": "performer"},
    "performer": {"tags": "tag"},
    "studio": {"tags": "tag"},
    "group": {"tags": "tag"},
    "tag": {"parents": "tag"},
}
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x08free"


def png_bytes(seed: int, size: int = 24) -> bytes:
    """A small PNG unique to `seed`."""
    rng = random.Random(seed)
    image = Image.new("RGB", (size, size))
    image.putdata(
        [(rng.randrange(256), rng.randrange(256), seed % 256) for _ in range(size * size)]
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass
class Row:
    """One row of a Stash table: scalar columns, links by target id, timestamps as datetimes."""

    id: int
    kind: str
    values: dict[str, Any]
    links: dict[str, list[int]] = field(default_factory=dict)
    studio: int | None = None
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    updated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    data: bytes = b""  # media bytes (images, scenes)
    groups: list[tuple[int, int | None]] = field(default_factory=list)  # scenes: (group, index)


class GraphQLFailure(Exception):
    """A resolver error: HTTP 200, `errors` and `data: null`."""


class StashDouble:
    """Stash in memory behind its GraphQL API. Use as a context manager; edit with methods."""

    def __init__(
        self,
        *,
        api_key: str | None = "stash-key",
        utc_offset_hours: int = 2,
        seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self.tz = dt.timezone(dt.timedelta(hours=utc_offset_hours))
        self.rows: dict[str, dict[int, Row]] = {k: {} for k in _PLURAL}
        self._next_id: dict[str, int] = dict.fromkeys(_PLURAL, 1)
        self._frozen: dt.datetime | None = None
        self._random = random.Random(seed)
        self._lock = threading.RLock()
        self._schema = build_schema(SDL)
        self.requests: dict[str, int] = {}
        self.graphql_requests = 0
        # ("status", code) | ("malformed", None): the next request answers with that status
        # or with broken JSON; ("mutate", (text, fn)): the next query containing `text`
        # answers with its `data` edited by fn(data).
        self.faults: list[tuple[str, Any]] = []
        self.delay = 0.0  # seconds before every GraphQL reply: time to kill a sync mid-way
        self._scan_listeners: list[asyncio.Queue[bool]] = []
        self.subscriptions = 0  # open scanCompleteSubscribe subscriptions
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # --- clock ------------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        """The server's local time at second precision (what `time.Now()` stores)."""
        moment = self._frozen or dt.datetime.now(self.tz)
        return moment.astimezone(self.tz).replace(microsecond=0)

    def freeze(self, moment: dt.datetime | None) -> None:
        """Stop the clock at `moment` (None: real time again) — edits then share a second."""
        self._frozen = moment

    def tick(self, seconds: float = 1) -> None:
        base = self._frozen or dt.datetime.now(self.tz)
        self._frozen = base + dt.timedelta(seconds=seconds)

    def text(self, moment: dt.datetime) -> str:
        """Go's `time.RFC3339` in the server's zone: `2026-11-21T10:00:05+02:00` (or `Z`)."""
        local = moment.astimezone(self.tz).replace(microsecond=0)
        out = local.isoformat()
        return out[:-6] + "Z" if out.endswith("+00:00") else out

    # --- edits (what Stash's mutations do to rows) ------------------------------------------

    def create(
        self,
        kind: str,
        *,
        links: dict[str, Iterable[int]] | None = None,
        studio: int | None = None,
        data: bytes | None = None,
        groups: Iterable[tuple[int, int | None]] = (),
        **values: Any,
    ) -> int:
        with self._lock:
            row_id = self._next_id[kind]
            self._next_id[kind] += 1
            now = self.now()
            row = Row(row_id, kind, dict(values), created_at=now, updated_at=now)
            row.links = {name: list(ids) for name, ids in (links or {}).items()}
            row.studio = studio
            row.groups = list(groups)
            if kind == "image":
                row.data = data if data is not None else png_bytes(row_id)
                row.values.setdefault("basename", f"img_{row_id:06}.png")
            elif kind == "scene":
                row.data = data if data is not None else MP4_HEAD + row_id.to_bytes(8, "big")
                row.values.setdefault("basename", f"scene_{row_id:05}.mp4")
            if kind in ("tag", "performer", "studio", "group"):
                row.values.setdefault("name", f"{kind} {row_id}")
            self.rows[kind][row_id] = row
            return row_id

    def update(
        self,
        kind: str,
        row_id: int,
        *,
        links: dict[str, Iterable[int]] | None = None,
        studio: int | bool | None = False,
        **values: Any,
    ) -> None:
        """An `<x>Update` mutation: columns and links replaced, `updated_at` = now."""
        with self._lock:
            row = self.rows[kind][row_id]
            row.values.update(values)
            for name, ids in (links or {}).items():
                row.links[name] = list(ids)
            if studio is not False:
                row.studio = studio if isinstance(studio, int) else None
            row.updated_at = self.now()

    def add_gallery_images(self, gallery: int, image_ids: Iterable[int]) -> None:
        """`addGalleryImages`: the join rows, and only the gallery's `updated_at` (#3759)."""
        with self._lock:
            for image_id in image_ids:
                links = self.rows["image"][image_id].links.setdefault("galleries", [])
                if gallery not in links:
                    links.append(gallery)
            self.rows["gallery"][gallery].updated_at = self.now()

    def remove_gallery_images(self, gallery: int, image_ids: Iterable[int]) -> None:
        with self._lock:
            for image_id in image_ids:
                links = self.rows["image"][image_id].links.get("galleries", [])
                if gallery in links:
                    links.remove(gallery)
            self.rows["gallery"][gallery].updated_at = self.now()

    def destroy(self, kind: str, row_id: int) -> None:
        """A physical delete; join rows pointing at it go too (no tombstone anywhere)."""
        with self._lock:
            del self.rows[kind][row_id]
            for rows in self.rows.values():
                for row in rows.values():
                    for name, target in _LINKS.get(row.kind, {}).items():
                        if target == kind and row_id in row.links.get(name, []):
                            row.links[name].remove(row_id)
                    if kind == "studio" and row.studio == row_id:
                        row.studio = None
                    if kind == "group":
                        row.groups = [g for g in row.groups if g[0] != row_id]

    def merge_tags(self, sources: Iterable[int], destination: int) -> None:
        """`tagsMerge`: links rewritten to `destination` (duplicates dropped), sources
        deleted, names kept as aliases; no `updated_at` changes anywhere."""
        with self._lock:
            sources = [s for s in sources if s != destination]
            dest = self.rows["tag"][destination]
            for source in sources:
                aliases = dest.values.setdefault("aliases", [])
                aliases.append(self.rows["tag"][source].values["name"])
            for rows in self.rows.values():
                for row in rows.values():
                    for name, target in _LINKS.get(row.kind, {}).items():
                        if target != "tag":
                            continue
                        ids = row.links.get(name, [])
                        if any(s in ids for s in sources):
                            kept = [i for i in ids if i not in sources]
                            if destination not in kept and row is not dest:
                                kept.append(destination)
                            row.links[name] = kept
            for source in sources:
                del self.rows["tag"][source]

    def scan_complete(self) -> None:
        """A scan job finished: `scanCompleteSubscribe` subscribers receive `true`."""
        loop = self._loop
        if loop is None:
            return
        for queue in list(self._scan_listeners):
            loop.call_soon_threadsafe(queue.put_nowait, True)

    # --- reading (the resolvers) ------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._port}{path}"

    def _files(self, row: Row) -> list[dict[str, Any]]:
        md5 = hashlib.md5(row.data).hexdigest()
        base = {
            "id": str(row.id),
            "path": f"/library/{row.values['basename']}",
            "basename": row.values["basename"],
            "mod_time": self.text(row.created_at),
            "size": len(row.data),
            "fingerprints": [
                {"type": "md5", "value": md5},
                {"type": "oshash", "value": md5[:16]},
            ],
            "created_at": self.text(row.created_at),
            "updated_at": self.text(row.created_at),
            "fingerprint": lambda _info, type: md5 if type == "md5" else None,
        }
        if row.kind == "scene":
            return [
                base
                | {
                    "__typename": "VideoFile",
                    "format": "mp4",
                    "width": 640,
                    "height": 360,
                    "duration": 1.0,
                    "video_codec": "h264",
                    "audio_codec": "aac",
                    "frame_rate": 30.0,
                    "bit_rate": 1000,
                }
            ]
        return [base | {"__typename": "ImageFile", "format": "png", "width": 24, "height": 24}]

    def image_count(self, gallery: int) -> int:
        """`Gallery.image_count`, resolved only when selected (a scan of every image here)."""
        return sum(gallery in r.links.get("galleries", []) for r in self.rows["image"].values())

    def _obj(self, row: Row) -> dict[str, Any]:
        """The GraphQL object of a row; relations resolve lazily (callables)."""
        kind = row.kind
        out: dict[str, Any] = {
            "id": str(row.id),
            "created_at": self.text(row.created_at),
            "updated_at": self.text(row.updated_at),
            "urls": row.values.get("urls", []),
            "organized": bool(row.values.get("organized", False)),
            "aliases": row.values.get("aliases", [] if kind != "group" else None),
            "alias_list": row.values.get("aliases", []),
            "ignore_auto_tag": False,
            "favorite": False,
            "child_studios": [],
            "children": [],
        }
        for name in (
            "title",
            "code",
            "date",
            "details",
            "photographer",
            "name",
            "description",
            "disambiguation",
            "director",
            "synopsis",
            "rating100",
        ):
            out[name] = row.values.get(name)
        for name, target in _LINKS.get(kind, {}).items():
            ids = row.links.get(name, [])
            out[name] = lambda _info, ids=ids, target=target: [
                self._obj(self.rows[target][i]) for i in ids if i in self.rows[target]
            ]
        out["studio"] = lambda _info: (
            self._obj(self.rows["studio"][row.studio])
            if row.studio in self.rows["studio"]
            else None
        )
        out["parent_studio"] = None
        unix = int(row.updated_at.timestamp())
        if kind == "image":
            out["visual_files"] = lambda _info: self._files(row)
            out["paths"] = {
                "image": self._url(f"/image/{row.id}/image?t={unix}"),
                "thumbnail": self._url(f"/image/{row.id}/thumbnail?t={unix}"),
                "preview": "",
            }
        if kind == "scene":
            out["files"] = lambda _info: self._files(row)
            out["paths"] = {
                "screenshot": self._url(f"/scene/{row.id}/screenshot?t={unix}"),
                "stream": self._url(f"/scene/{row.id}/stream"),
                "preview": self._url(f"/scene/{row.id}/preview"),
                "webp": self._url(f"/scene/{row.id}/webp"),
            }
            out["groups"] = lambda _info: [
                {"group": self._obj(self.rows["group"][g]), "scene_index": index}
                for g, index in row.groups
                if g in self.rows["group"]
            ]
        if kind == "gallery":
            out["image_count"] = lambda _info: self.image_count(row.id)
            out["paths"] = {"cover": "", "preview": ""}
            out["scenes"] = []
        if kind in ("tag", "performer"):
            out["image_count"] = 0
        if kind == "group":
            out["scene_count"] = 0
        return out

    def _matches(self, row: Row, criteria: dict[str, Any] | None) -> bool:
        if not criteria:
            return True
        for name, criterion in criteria.items():
            if name == "AND":
                if not self._matches(row, criterion):
                    return False
            elif name == "OR":
                raise GraphQLFailure("OR is not supported by the double")
            elif name == "NOT":
                if self._matches(row, criterion):
                    return False
            elif name in ("updated_at", "created_at"):
                if not _text_criterion(self.text(getattr(row, name)), criterion):
                    return False
            elif name == "id":
                if not _int_criterion(row.id, criterion):
                    return False
            elif name == "galleries":
                if not _multi_criterion(row.links.get("galleries", []), criterion):
                    return False
            else:
                raise GraphQLFailure(f"unsupported criterion {name}")
        return True

    def _find_many(self, kind: str, info: Any, **args: Any) -> dict[str, Any]:
        with self._lock:
            ids = args.get("ids") or args.get(f"{kind}_ids")
            rows = self.rows[kind]
            if ids:
                found = []
                for raw in ids:
                    row = rows.get(int(raw))
                    if row is None:
                        raise GraphQLFailure(f"{kind} with id {raw} not found")
                    found.append(row)
                return {"count": len(found), _PLURAL[kind]: [self._obj(r) for r in found]}
            find = args.get("filter") or {}
            sort = find.get("sort")
            selected = [r for r in rows.values() if self._matches(r, args.get(_FILTER_ARG[kind]))]
            if sort:
                if sort not in _SORTS[kind]:
                    raise GraphQLFailure(f"invalid sort: {sort}")
                tie = "title" if kind in _UNORDERED else "name"
                selected.sort(key=lambda r: (str(r.values.get(tie) or r.id), r.id))
                if sort == "random":
                    self._random.shuffle(selected)
                elif sort != tie:
                    selected.sort(key=lambda r: _sort_value(r, sort, self.text))
                if find.get("direction") == "DESC":
                    selected.reverse()
            elif kind in _UNORDERED:
                self._random.shuffle(selected)
            else:
                selected.sort(key=lambda r: (str(r.values.get("name") or ""), r.id))
            per_page = find.get("per_page")
            per_page = 25 if per_page is None else per_page
            page = max(1, find.get("page") or 1)
            start = (page - 1) * per_page
            chosen = selected if per_page < 0 else selected[start : start + per_page]
            result: dict[str, Any] = {
                "count": len(selected),
                _PLURAL[kind]: [self._obj(r) for r in chosen],
            }
            if kind == "image":
                result |= {"megapixels": 0.0, "filesize": float(sum(len(r.data) for r in selected))}
            if kind == "scene":
                result |= {"duration": 0.0, "filesize": float(sum(len(r.data) for r in selected))}
            return result

    def _find_one(self, kind: str, info: Any, **args: Any) -> dict[str, Any] | None:
        with self._lock:
            raw = args.get("id")
            row = self.rows[kind].get(int(raw)) if raw is not None and str(raw).isdigit() else None
            return None if row is None else self._obj(row)

    def _root(self) -> dict[str, Any]:
        root: dict[str, Any] = {}
        for kind, plural in _PLURAL.items():
            many = "find" + plural[0].upper() + plural[1:]
            one = "find" + kind[0].upper() + kind[1:]
            root[many] = lambda info, kind=kind, **a: self._find_many(kind, info, **a)
            root[one] = lambda info, kind=kind, **a: self._find_one(kind, info, **a)
        return root

    # --- HTTP -------------------------------------------------------------------------------

    def _authorised(self, scope: Scope) -> bool:
        if self.api_key is None:
            return True
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        key = headers.get("apikey")
        if not key:
            query = dict(
                part.split("=", 1)
                for part in scope.get("query_string", b"").decode().split("&")
                if "=" in part
            )
            key = query.get("apikey")
        return key == self.api_key

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self._loop = asyncio.get_running_loop()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        self.requests[path] = self.requests.get(path, 0) + 1
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if not self._authorised(scope):
            await _respond(send, 401, b"", [(b"www-authenticate", b"FormBased")])
            return
        if self.faults and self.faults[0][0] != "mutate":
            kind, value = self.faults.pop(0)
            if kind == "status":
                await _respond(send, value, b"fault", [])
                return
            if kind == "malformed":
                await _respond(send, 200, b'{"data": {"findImages": ', [])
                return
        if path == "/graphql" and scope["method"] == "POST":
            if self.delay:
                await asyncio.sleep(self.delay)
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            status, payload = await asyncio.to_thread(self._graphql, body)
            await _respond(send, status, payload, [(b"content-type", b"application/json")])
            return
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] in ("image", "scene") and parts[1].isdigit():
            await self._media(send, parts[0], int(parts[1]), parts[2])
            return
        await _respond(send, 404, b"404 page not found\n", [])

    def _graphql(self, body: bytes) -> tuple[int, bytes]:
        self.graphql_requests += 1
        try:
            request = json.loads(body)
            query = request["query"]
            variables = request.get("variables")
        except (ValueError, KeyError, TypeError) as exc:
            message = f"json request body could not be decoded: {exc}"
            return 400, json.dumps({"errors": [{"message": message}], "data": None}).encode()
        try:
            document = parse(query)
        except GraphQLError as exc:
            return 422, _errors([exc], "GRAPHQL_PARSE_FAILED")
        problems = validate(self._schema, document)
        if problems:
            return 422, _errors(problems, "GRAPHQL_VALIDATION_FAILED")
        result = execute(self._schema, document, self._root(), variable_values=variables)
        assert not asyncio.iscoroutine(result)
        if result.errors:
            errors = [
                {"message": str(e.original_error or e.message), "path": e.path}
                for e in result.errors
            ]
            if any(not isinstance(e.original_error, GraphQLFailure | None) for e in result.errors):
                raise result.errors[0]  # a bug in the double, not a Stash error
            return 200, json.dumps({"errors": errors, "data": result.data}).encode()
        for index, (kind, value) in enumerate(self.faults):
            if kind == "mutate" and value[0] in query:
                del self.faults[index]
                value[1](result.data)
                break
        return 200, json.dumps({"data": result.data}).encode()

    async def _media(self, send: Send, kind: str, row_id: int, what: str) -> None:
        row = self.rows[kind].get(row_id)
        if row is None:
            await _respond(send, 404, b"404 page not found\n", [])
            return
        if kind == "image" and what == "image":
            data, mime = row.data, b"image/png"
        elif kind == "image" and what == "thumbnail":
            image = Image.open(io.BytesIO(row.data)).convert("RGB")
            image.thumbnail((8, 8))
            out = io.BytesIO()
            image.save(out, format="JPEG")
            data, mime = out.getvalue(), b"image/jpeg"
        elif kind == "scene" and what == "stream":
            data, mime = row.data, b"video/mp4"
        else:
            await _respond(send, 404, b"404 page not found\n", [])
            return
        modified = row.created_at.astimezone(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
        await _respond(
            send,
            200,
            data,
            [
                (b"content-type", mime),
                (b"last-modified", modified.encode()),
                (b"accept-ranges", b"bytes"),
            ],
        )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`/graphql` over `graphql-transport-ws`: connection_init → ack, subscribe → next."""
        message = await receive()
        assert message["type"] == "websocket.connect"
        if scope["path"] != "/graphql" or not self._authorised(scope):
            await send({"type": "websocket.close", "code": 1008})
            return
        protocols = scope.get("subprotocols") or []
        chosen = "graphql-transport-ws" if "graphql-transport-ws" in protocols else "graphql-ws"
        await send({"type": "websocket.accept", "subprotocol": chosen})
        queue: asyncio.Queue[bool] = asyncio.Queue()
        subscriptions: dict[str, bool] = {}
        self._scan_listeners.append(queue)
        next_type = "next" if chosen == "graphql-transport-ws" else "data"
        pump: asyncio.Task[None] | None = None

        async def forward() -> None:
            while True:
                value = await queue.get()
                for sub_id in list(subscriptions):
                    payload = {"data": {"scanCompleteSubscribe": value}}
                    await send(
                        {
                            "type": "websocket.send",
                            "text": json.dumps(
                                {"id": sub_id, "type": next_type, "payload": payload}
                            ),
                        }
                    )

        try:
            pump = asyncio.create_task(forward())
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                try:
                    frame = json.loads(message.get("text") or "{}")
                except ValueError:
                    continue
                kind = frame.get("type")
                if kind == "connection_init":
                    await send(
                        {"type": "websocket.send", "text": json.dumps({"type": "connection_ack"})}
                    )
                elif kind in ("subscribe", "start"):
                    query = (frame.get("payload") or {}).get("query", "")
                    document = parse(query)
                    problems = validate(self._schema, document)
                    if problems or "scanCompleteSubscribe" not in query:
                        await send(
                            {
                                "type": "websocket.send",
                                "text": json.dumps(
                                    {
                                        "id": frame.get("id"),
                                        "type": "error",
                                        "payload": [{"message": "unsupported subscription"}],
                                    }
                                ),
                            }
                        )
                        continue
                    subscriptions[str(frame.get("id"))] = True
                    self.subscriptions += 1
                elif kind in ("complete", "stop"):
                    if subscriptions.pop(str(frame.get("id")), None):
                        self.subscriptions -= 1
                elif kind == "ping":
                    await send({"type": "websocket.send", "text": json.dumps({"type": "pong"})})
        finally:
            if pump is not None:
                pump.cancel()
            self._scan_listeners.remove(queue)
            self.subscriptions -= len(subscriptions)

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self, port: int = 0) -> StashDouble:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port or self._port))
        self._port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self._port,
            http="h11",
            ws=_WebSocketProtocol,
            lifespan="on",
            interface="asgi3",
            proxy_headers=False,
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="stash-double", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the Stash double failed to start")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(10)
        self._server = self._thread = None
        self._loop = None

    def __enter__(self) -> StashDouble:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _sort_value(row: Row, sort: str, text: Callable[[dt.datetime], str]) -> Any:
    if sort == "id":
        return row.id
    if sort in ("updated_at", "created_at"):
        return text(getattr(row, sort))
    if sort == "rating":
        return row.values.get("rating100") or 0
    if sort == "path":
        return str(row.values.get("basename") or "")
    return str(row.values.get(sort) or "")


def _text_criterion(stored: str, criterion: dict[str, Any]) -> bool:
    """`getTimestampWhereClause`: the value is bound as given and compared as TEXT."""
    value, modifier = criterion["value"], criterion["modifier"]
    if modifier == "GREATER_THAN":
        return stored > value
    if modifier == "LESS_THAN":
        return stored < value
    if modifier == "EQUALS":
        return stored == value
    if modifier == "NOT_EQUALS":
        return stored != value
    upper = criterion.get("value2") or "9999"
    if modifier == "BETWEEN":
        return value <= stored <= upper
    if modifier == "NOT_BETWEEN":
        return stored < value or stored > upper
    if modifier == "IS_NULL":
        return False
    if modifier == "NOT_NULL":
        return True
    raise GraphQLFailure(f"unsupported modifier {modifier} for timestamp criterion")


def _int_criterion(stored: int, criterion: dict[str, Any]) -> bool:
    value, modifier = criterion["value"], criterion["modifier"]
    return {
        "EQUALS": stored == value,
        "NOT_EQUALS": stored != value,
        "GREATER_THAN": stored > value,
        "LESS_THAN": stored < value,
    }.get(modifier, False)


def _multi_criterion(linked: list[int], criterion: dict[str, Any]) -> bool:
    modifier = criterion["modifier"]
    if modifier == "IS_NULL":
        return not linked
    if modifier == "NOT_NULL":
        return bool(linked)
    values = {int(v) for v in criterion.get("value") or []}
    if not values:
        return True  # multiCriterionHandlerBuilder returns early on an empty value
    if modifier == "INCLUDES":
        return bool(values & set(linked))
    if modifier == "INCLUDES_ALL":
        return values <= set(linked)
    if modifier == "EXCLUDES":
        return not (values & set(linked))
    raise GraphQLFailure("not equals modifier is not supported for multi criterion input")


def _errors(problems: Iterable[GraphQLError], code: str) -> bytes:
    return json.dumps(
        {
            "errors": [
                {
                    "message": p.message,
                    "locations": [{"line": loc.line, "column": loc.column} for loc in p.locations]
                    if p.locations
                    else [],
                    "extensions": {"code": code},
                }
                for p in problems
            ],
            "data": None,
        }
    ).encode()


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})
