"""Signing in: with auth off the gallery is the local owner's at once; with
`GALLERYSYNC_AUTH=on` it asks for an API token, exchanges it for a session cookie
(POST /api/session), shows the user and a sign-out, and goes back to the form on any 401."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, expect

from tests.helpers import cli_json, run_cli, wait_for
from tests.web.support import TILES, Library, gallery_of

SESSION_COOKIE = "gallerysync_session"


def test_auth_off_means_the_local_owner(library: Library, context: BrowserContext) -> None:
    page = gallery_of(library, context, 1)
    expect(page.locator("#signin")).to_be_hidden()
    expect(page.locator("#user")).to_be_hidden()


def test_sign_in_sign_out_and_back_to_the_form_on_401(
    library: Library, context: BrowserContext
) -> None:
    library.images(2)
    library.add_folder(library.root)
    first = cli_json(library.home, "token", "create", "--user", "admin")
    library.token = first["token"]
    library.env["GALLERYSYNC_AUTH"] = "on"
    library.start()
    wait_for(lambda: len(library.asset_ids()) == 2, what="the start-up scan")

    page = context.new_page()
    page.goto(library.url + "/")
    form = page.locator("#signin-form")
    token = form.locator("input[name=token]")
    submit = form.locator("button[type=submit]")
    expect(form).to_be_visible()
    expect(token).to_have_attribute("type", "password")
    expect(page.locator("#view-gallery")).to_be_hidden()
    expect(page.locator(TILES)).to_have_count(0)

    token.fill("gst_not-a-real-token")
    submit.click()
    expect(page.locator("#signin-error")).to_contain_text("not accepted")
    expect(form).to_be_visible()
    expect(page.locator(TILES)).to_have_count(0)

    token.fill(first["token"])
    submit.click()
    expect(form).to_be_hidden()
    expect(page.locator(TILES)).to_have_count(2)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(page.locator("#user .user-name")).to_have_text("admin")
    expect(page.locator("#sign-out")).to_be_visible()
    cookie = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] is True
    expect(token).to_have_value("")  # the secret does not stay in the page

    # Live with a session: a new file still appears.
    library.image("signed-in.png")
    expect(page.locator(TILES)).to_have_count(3)

    # Revoking the token ends its sessions: the next call answers 401 → the sign-in form,
    # and nothing of the gallery stays on the page.
    run_cli(library.home, "token", "revoke", first["id"])
    page.locator('.nav a[data-view="sources"]').click()
    expect(form).to_be_visible()
    expect(page.locator(".signin-notice")).to_be_visible()
    expect(page.locator(TILES)).to_have_count(0)
    expect(page.locator("#view-sources")).to_be_hidden()

    second = cli_json(library.home, "token", "create", "--user", "admin")
    token.fill(second["token"])
    submit.click()
    expect(page.locator(".source")).to_have_count(1)  # back where the user was: #/sources
    page.locator('.nav a[data-view="gallery"]').click()
    expect(page.locator(TILES)).to_have_count(3)

    page.locator("#sign-out").click()
    expect(form).to_be_visible()
    expect(page.locator(TILES)).to_have_count(0)
    expect(page.locator("#user")).to_be_hidden()
    assert not [c for c in context.cookies() if c["name"] == SESSION_COOKIE]
    page.reload()
    expect(form).to_be_visible()  # signed out for real, not just hidden
