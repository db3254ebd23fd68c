"""The Stash double reproduces the behaviours the connector is built around (each test names
the Stash code it follows; quotes in docs/research/stash-api.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.doubles.stash import StashDouble


@pytest.fixture
def stash() -> Iterator[StashDouble]:
    with StashDouble() as double:
        double.freeze(dt.datetime(2026, 11, 21, 10, 0, 0, tzinfo=double.tz))
        yield double


def _q(stash: StashDouble, query: str, *, key: str | None = "stash-key") -> httpx.Response:
    headers = {"ApiKey": key} if key else {}
    return httpx.post(stash.url + "/graphql", json={"query": query}, headers=headers, timeout=10)


def _data(stash: StashDouble, query: str) -> dict[str, Any]:
    reply = _q(stash, query)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def _ids(result: dict[str, Any], plural: str = "images") -> list[int]:
    return [int(x["id"]) for x in result[plural]]


def test_count_does_not_depend_on_the_page_and_per_page_extremes(stash: StashDouble) -> None:
    """pkg/models/find_filter.go: per_page defaults to 25, negative = all, 0 = count only."""
    for i in range(30):
        stash.create("image", title=f"t{i}")
    page2 = _data(
        stash,
        '{ r: findImages(filter: {page: 2, per_page: 10, sort: "id"}) { count images { id } } }',
    )["r"]
    assert page2["count"] == 30 and _ids(page2) == list(range(11, 21))
    default = _data(stash, '{ r: findImages(filter: {sort: "id"}) { count images { id } } }')["r"]
    assert len(default["images"]) == 25
    everything = _data(stash, "{ r: findImages(filter: {per_page: -1}) { count images { id } } }")[
        "r"
    ]
    assert sorted(_ids(everything)) == list(range(1, 31))
    only_count = _data(stash, "{ r: findImages(filter: {per_page: 0}) { count images { id } } }")[
        "r"
    ]
    assert only_count == {"count": 30, "images": []}


def test_sort_whitelist_and_no_defined_order_without_a_sort(stash: StashDouble) -> None:
    """pkg/sqlite/sql.go validateSort; image.go: no sort, no ORDER BY."""
    for i in range(40):
        stash.create("image", title=f"t{i}")
    reply = _q(stash, '{ findImages(filter: {sort: "rating100"}) { count } }')
    assert reply.status_code == 200
    assert reply.json() == {
        "errors": [{"message": "invalid sort: rating100", "path": ["findImages"]}],
        "data": None,
    }
    orders = {
        tuple(
            _ids(_data(stash, "{ r: findImages(filter: {per_page: -1}) { images { id } } }")["r"])
        )
        for _ in range(3)
    }
    assert len(orders) > 1, "unsorted results came back in one stable order"
    tags = [stash.create("tag", name=n) for n in ("b", "a", "c")]
    by_name = _data(stash, "{ r: findTags { tags { id name } } }")["r"]
    assert [t["name"] for t in by_name["tags"]] == ["a", "b", "c"] and len(tags) == 3


def test_updated_at_is_compared_as_local_text_at_second_precision(stash: StashDouble) -> None:
    """sql.go getTimestampWhereClause: `updated_at > ?`, TEXT against RFC 3339 local time."""
    first = stash.create("image")
    stash.tick(1)
    second = stash.create("image")
    stored = _data(stash, f'{{ findImage(id: "{second}") {{ updated_at }} }}')["findImage"]
    assert stored["updated_at"] == "2026-11-21T10:00:01+02:00"

    def after(value: str) -> list[int]:
        query = (
            '{ r: findImages(filter: {per_page: -1, sort: "id"}, image_filter: '
            f'{{updated_at: {{value: "{value}", modifier: GREATER_THAN}}}})'
            " { images { id } } }"
        )
        return _ids(_data(stash, query)["r"])

    assert after("2026-11-21T10:00:01") == [second]  # the same second again: "…+02:00" > "…"
    assert after("2026-11-21T10:00:00") == [first, second]
    # A UTC "Z" time compares as text, not as an instant: 08:00:00Z is the instant `first`
    # was written, yet "10:00:00+02:00" > "08:00:00Z" lists it (west of UTC it would skip).
    assert after("2026-11-21T08:00:00Z") == [first, second]
    assert after("2026-11-21T10:00:01.999") == []  # "." < "+": a fraction hides the second


def test_ids_bypass_the_filter_and_one_missing_id_fails_the_query(stash: StashDouble) -> None:
    """image.go FindMany: `image with id N not found`."""
    one = stash.create("image")
    reply = _q(stash, f'{{ findImages(ids: ["{one}", "77"]) {{ count }} }}')
    assert reply.json()["errors"][0]["message"] == "image with id 77 not found"
    data = _data(stash, f'{{ a: findImage(id: "{one}") {{ id }} b: findImage(id: "77") {{ id }} }}')
    assert data == {"a": {"id": str(one)}, "b": None}


def test_deletes_are_physical_and_take_their_links(stash: StashDouble) -> None:
    tag = stash.create("tag")
    image = stash.create("image", links={"tags": [tag]})
    stash.destroy("tag", tag)
    data = _data(
        stash, f'{{ findImage(id: "{image}") {{ tags {{ id }} }} findTag(id: "{tag}") {{ id }} }}'
    )
    assert data == {"findImage": {"tags": []}, "findTag": None}


def test_gallery_membership_bumps_only_the_gallery(stash: StashDouble) -> None:
    """pkg/gallery/update.go AddImages (#3759)."""
    gallery = stash.create("gallery", title="g")
    image = stash.create("image")
    before = stash.rows["image"][image].updated_at
    stash.tick(5)
    stash.add_gallery_images(gallery, [image])
    assert stash.rows["image"][image].updated_at == before
    assert stash.rows["gallery"][gallery].updated_at == stash.now()
    data = _data(stash, f'{{ findImage(id: "{image}") {{ galleries {{ id }} }} }}')
    assert data["findImage"]["galleries"] == [{"id": str(gallery)}]


def test_tag_merge_rewrites_links_without_moving_updated_at(stash: StashDouble) -> None:
    """pkg/sqlite/tag.go Merge."""
    a, b = stash.create("tag", name="a"), stash.create("tag", name="b")
    image = stash.create("image", links={"tags": [a]})
    before = _data(stash, f'{{ findImage(id: "{image}") {{ updated_at }} }}')["findImage"]
    stash.tick(5)
    stash.merge_tags([a], b)
    after = _data(stash, f'{{ findImage(id: "{image}") {{ updated_at tags {{ id }} }} }}')[
        "findImage"
    ]
    assert after == {"updated_at": before["updated_at"], "tags": [{"id": str(b)}]}
    assert stash.rows["tag"][b].values["aliases"] == ["a"] and a not in stash.rows["tag"]


def test_auth_errors_and_faults(stash: StashDouble) -> None:
    """session.go Authenticate; gqlgen statusFor (422) and undecodable bodies (400)."""
    assert _q(stash, "{ findTags { count } }", key=None).status_code == 401
    assert _q(stash, "{ findTags { count } }", key="wrong").text == ""
    invalid = _q(stash, "{ findTags { nope } }")
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert (
        httpx.post(
            stash.url + "/graphql", content=b"{", headers={"ApiKey": "stash-key"}
        ).status_code
        == 400
    )
    image = stash.create("image")
    media = httpx.get(f"{stash.url}/image/{image}/image?apikey=stash-key")
    assert media.status_code == 200 and media.content == stash.rows["image"][image].data
    assert "etag" not in media.headers and "last-modified" in media.headers
    stash.faults.append(("status", 503))
    assert _q(stash, "{ findTags { count } }").status_code == 503
    stash.faults.append(("malformed", None))
    with pytest.raises(ValueError):
        _q(stash, "{ findTags { count } }").json()
