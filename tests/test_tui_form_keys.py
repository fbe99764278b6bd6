"""Keys on the start form: arrows move through the checklist, and typed-ahead input (a
barcode scanner, a paste, a fast typist) lands in the fields it was typed for."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import Input
from tui_support import burst, frozen_app, wait_for

from laserlog.tui.app import LaserlogApp
from laserlog.tui.session_form import SessionForm
from laserlog.tui.tick_box import TickBox


def run(app: LaserlogApp, scenario: Callable[[Pilot], Awaitable[None]]) -> None:
    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await scenario(pilot)

    try:
        asyncio.run(main())
    finally:
        app.controller.shutdown()


def fields(form: SessionForm) -> dict[str, str]:
    return {name: form.query_one(f"#{name}", Input).value
            for name in ("operator", "client", "area", "skin")}


async def expect_fields(pilot: Pilot, form: SessionForm, want: dict[str, str]) -> None:
    """Wait for the fields to read `want`; on a timeout, show what they read instead."""
    try:
        await wait_for(pilot, lambda: fields(form) == want, timeout_s=5, what="the fields")
    except AssertionError:
        assert fields(form) == want
        raise


async def open_form(pilot: Pilot) -> SessionForm:
    await pilot.press("s")
    form = await wait_for(pilot, lambda: isinstance(pilot.app.screen, SessionForm)
                          and pilot.app.screen.focused is not None and pilot.app.screen,
                          what="the session form with a field focused")
    assert isinstance(form, SessionForm)
    return form


TYPED = {"operator": "tech-07", "client": "C-1042", "area": "left cheek", "skin": "III"}


@pytest.mark.parametrize("separator", ["\t", "\n"])
def test_a_burst_of_fields_lands_each_in_its_own_field(separator, tmp_path):
    app = frozen_app(tmp_path)

    async def scenario(pilot: Pilot) -> None:
        form = await open_form(pilot)
        # The Course field after the skin type stays empty (a one-off): one more separator.
        burst(pilot, *separator.join(TYPED.values()), separator, separator)
        await expect_fields(pilot, form, TYPED)
        first = form.query_one("#check-eyewear", TickBox)
        await wait_for(pilot, lambda: form.focused is first, what="the first checklist item")

    run(app, scenario)


def test_keys_typed_while_the_form_opens_land_in_the_form_not_the_apps_keys(tmp_path):
    app = frozen_app(tmp_path, pulses=5, alarm=True)  # `a` would open the acknowledge dialog
    app.controller.session = None  # idle, with alarms standing

    async def scenario(pilot: Pilot) -> None:
        burst(pilot, "s", *"\t".join(("tech-07", "C-1042", "left cheek", "a")))
        form = await wait_for(pilot, lambda: isinstance(pilot.app.screen, SessionForm)
                              and pilot.app.screen, what="the session form")
        want = {"operator": "tech-07", "client": "C-1042", "area": "left cheek", "skin": "a"}
        await expect_fields(pilot, form, want)
        assert pilot.app.screen is form  # no dialog opened by a typed `a`

    run(app, scenario)


def test_a_pasted_line_with_tabs_fills_the_fields_in_order(tmp_path):
    app = frozen_app(tmp_path)

    async def scenario(pilot: Pilot) -> None:
        form = await open_form(pilot)
        pilot.app.post_message(events.Paste("\t".join(TYPED.values())))
        await expect_fields(pilot, form, TYPED)

    run(app, scenario)


def test_arrow_keys_move_through_the_checklist_as_tab_does(tmp_path):
    app = frozen_app(tmp_path)

    async def scenario(pilot: Pilot) -> None:
        form = await open_form(pilot)
        boxes = list(form.query(TickBox))[:3]
        boxes[0].focus()
        await pilot.pause()
        await pilot.press("down")
        assert form.focused is boxes[1]
        await pilot.press("down", "space")
        assert form.focused is boxes[2] and boxes[2].value and not boxes[1].value
        await pilot.press("up", "up")
        assert form.focused is boxes[0]
        await pilot.press("up")
        assert form.focused is form.query_one("#course", Input)  # the field above the list

    run(app, scenario)


def test_a_burst_of_ticks_and_arrows_ticks_the_boxes_it_was_typed_to(tmp_path):
    app = frozen_app(tmp_path)

    async def scenario(pilot: Pilot) -> None:
        form = await open_form(pilot)
        form.query_one("#check-eyewear").focus()
        await pilot.pause()
        burst(pilot, " ", "down", "down", " ")
        ticks = lambda: {key: form.query_one(f"#check-{key}", TickBox).value  # noqa: E731
                         for key in ("eyewear", "consent", "sun_exposure")}
        want = {"eyewear": True, "consent": False, "sun_exposure": True}
        try:
            await wait_for(pilot, lambda: ticks() == want, timeout_s=5, what="the ticks")
        except AssertionError:
            assert ticks() == want
            raise

    run(app, scenario)


def test_ticking_new_course_from_the_keyboard_moves_on_to_its_plan(tmp_path):
    app = frozen_app(tmp_path)

    async def scenario(pilot: Pilot) -> None:
        form = await open_form(pilot)
        form.query_one("#new-course").focus()
        await pilot.pause()
        await pilot.press("space")
        indication = form.query_one("#indication", Input)
        await wait_for(pilot, lambda: form.focused is indication, timeout_s=5,
                       what="the Indication field focused, not the Test spot box")
        await pilot.press(*"pores")
        assert indication.value == "pores"
        assert not form.query_one("#test-spot", TickBox).value

    run(app, scenario)
