"""The form that starts a session: who, whom, where, skin type, and the site's checklist.

It holds the start to the site's start-of-session contract (recording.contract), the one
`laserlog record` holds it to, with the contract's own reason beside each field,
and shows a returning client's course so far (and can start from their last settings).
Its Course field picks a treatment course: the course line says which session of the plan
this is, the days since the last against the window and the last dose; a start before the
window opens asks for an officer's ID, passphrase and reason. Once a skin type is typed, the
envelope line says what that type may receive on this console (the words `record` prints).

"New course" plans a course for the client and area typed, held to the rules `course new`
holds (recording.course_plan), with the consent agreed before a witness where the site keeps
a consent text; the course is recorded only when its first session starts, so a cancelled
or refused form writes nothing. "Test spot" starts a test spot, which ends by itself after
the site's limit of pulses. The site's aftercare text is read before the start; the end of
the session records it as given.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Checkbox, Footer, Input, Label, Static

from laserlog.config.checklist import EYEWEAR_KEY, label_for
from laserlog.config.documents import Document, site_document
from laserlog.errors import ConsoleNotReady, LaserlogError, SessionError
from laserlog.recording import courses
from laserlog.recording.contract import (
    FIELDS,
    CourseRequest,
    SessionInfo,
    TooEarly,
    new_course_refusal,
    normalise_skin_type,
)
from laserlog.recording.course_plan import CoursePlan, plan_refusals
from laserlog.tui.alarm_bar import AlarmBar
from laserlog.tui.queries import AreaHistory, ClientHistory, client_history
from laserlog.tui.tick_box import TickBox

if TYPE_CHECKING:
    from laserlog.tui.controller import NewCourse
    from laserlog.tui.host import SessionHost

#: A new course's fields on the form: id, label, hint. The refusals name them by their ids.
PLAN_FIELDS = (("indication", "Indication", ""),
               ("sessions", "Sessions", "planned sessions, e.g. 6"),
               ("interval", "Interval", "MIN-MAX days"),
               ("target", "Target", "optional, in days"),
               ("note", "Note", "optional"))
PLAN_NAMES = {"client": "client", "area": "area", "indication": "indication",
              "sessions": "sessions", "interval": "interval", "target": "target"}

_SETTING_TEXT = (("energy", "energy {} mJ", ".1f", 1000.0), ("fluence", "{} J/cm2", ".3g", 1.0),
                 ("spot", "spot {} mm", ".1f", 1.0), ("pulse_duration", "{} ps", ".0f", 1.0),
                 ("rep_rate", "{} Hz", "g", 1.0), ("handpiece", "HP{}", ".0f", 1.0))


def settings_text(settings: dict[str, tuple[float, str]]) -> str:
    """Return last settings as one short line."""
    parts = [template.format(format(settings[name][0] * scale, fmt))
             for name, template, fmt, scale in _SETTING_TEXT if name in settings]
    return ", ".join(parts) or "no settings recorded"


class SessionForm(ModalScreen[int | None]):
    """Start a session: details, checklist, returning client's course; gives the session id."""

    BINDINGS = [
        Binding("ctrl+s", "submit", "Start session", id="form.start"),
        Binding("escape", "cancel", "Cancel", id="form.cancel"),
        # Priority: the focus moves the moment the key is read, so the characters typed
        # after it (a scanner, a paste, a fast typist) go to the next field, not this one.
        Binding("tab,down", "move_focus(1)", "Next field", show=False, priority=True,
                id="form.next"),
        Binding("shift+tab,up", "move_focus(-1)", "Previous field", show=False,
                priority=True, id="form.previous"),
        Binding("enter", "next_after_input", "Next field", show=False, priority=True,
                id="form.enter"),
    ]
    #: The app holds keys typed while the form opens, and hands them over once it is ready.
    keys_ready = False
    #: A pasted line with tabs or line breaks is typed, field by field.
    paste_as_keys = True

    def __init__(self) -> None:
        super().__init__()
        self.touched: set[str] = set()
        self.history: ClientHistory | None = None
        self.last_area: AreaHistory | None = None

    @property
    def laserlog(self) -> SessionHost:
        return cast("SessionHost", self.app)

    def compose(self) -> ComposeResult:
        app = self.laserlog
        profile = app.controller.profile
        yield AlarmBar(id="alarm")
        with VerticalScroll(id="form"):
            yield Static(f"Start a session on {profile.name}", classes="form-title",
                         markup=False)
            with Grid(id="fields"):
                for name, label, hint in (
                        ("operator", "Operator", "your ID, e.g. tech-07"),
                        ("client", "Client", "e.g. C-1042; never a name"),
                        ("area", "Area", "e.g. left cheek"),
                        ("skin", "Skin type", "Fitzpatrick I-VI (or 1-6)")):
                    yield Label(label, classes="field-label")
                    yield Input(app.last_operator if name == "operator" else "", placeholder=hint,
                                id=name, compact=True)
                    yield Static("", id=f"{name}-error", classes="error", markup=False)
                yield Label("Course", classes="field-label")
                yield Input("", placeholder="course ID; empty: a one-off", id="course",
                            compact=True)
                yield Static("", id="course-error", classes="error", markup=False)
                if app.controller.operators_registered():
                    yield Label("Passphrase", classes="field-label")
                    yield Input("", placeholder="required at this site",
                                id="passphrase", password=True, compact=True)
                    yield Static("", id="passphrase-error", classes="error", markup=False)
            yield Static("", id="envelope-line", markup=False)
            yield Static("Pre-treatment checklist", classes="section")
            for item in app.checklist:
                with Horizontal(classes="check-row"):
                    yield TickBox(label_for(item, profile.wavelengths_nm)
                                   + ("" if item.required else " (optional)"),
                                   id=f"check-{item.key}")
                    yield Static("", id=f"check-{item.key}-error", classes="error",
                                 markup=False)
            yield Static("", id="console-trouble", classes="error", markup=False)
            with Horizontal(id="override-row"):
                yield Label("Start anyway because", classes="field-label")
                yield Input("", placeholder="why it is safe to start (recorded in the session)",
                            id="override", compact=True)
            if not app.controller.operators_registered():  # else the passphrase is asked above
                with Horizontal(id="override-pass-row", classes="override"):
                    yield Label("Your passphrase", classes="field-label")
                    yield Input("", placeholder="a start over a fault needs a registered operator",
                                id="override-passphrase", password=True, compact=True)
            policy = app.controller.contract.courses
            with Horizontal(id="course-ticks"):
                yield TickBox("New course", id="new-course")
                yield TickBox(f"Test spot (stops after {policy.test_spot_max_pulses} pulses)",
                              id="test-spot")
            with Grid(id="plan-fields"):
                indications = policy.indications
                for name, label, hint in PLAN_FIELDS:
                    yield Label(label, classes="field-label")
                    yield Input("", placeholder=hint or ", ".join(indications), id=name,
                                compact=True, suggester=SuggestFromList(indications)
                                if name == "indication" else None)
                    yield Static("", id=f"{name}-error", classes="error", markup=False)
                if app.controller.site_document_file("consent") is not None:
                    yield Label("Witness", classes="field-label")
                    yield Input("", placeholder="consent witness ID (registered)",
                                id="witness", compact=True)
                    yield Static("", id="witness-error", classes="error", markup=False)
                    yield Label("Passphrase", classes="field-label")
                    yield Input("", placeholder="the witness's passphrase",
                                id="witness-passphrase", password=True, compact=True)
                    yield Static("", id="witness-passphrase-error", classes="error",
                                 markup=False)
                    yield Static("", id="consent-line", markup=False)
            yield Static("", id="course-line", markup=False)
            yield Static("", id="course-refusal", classes="error", markup=False)
            with Horizontal(id="early-row", classes="early"):
                yield Label("Early: officer", classes="field-label")
                yield Input("", placeholder="officer ID", id="early-officer", compact=True)
                yield Input("", placeholder="officer's passphrase", id="early-passphrase",
                            password=True, compact=True)
            with Horizontal(id="early-reason-row", classes="early"):
                yield Label("Early because", classes="field-label")
                yield Input("", placeholder="why the session starts before its window "
                            "(recorded)", id="early-reason", compact=True)
            yield Static("", id="returning", markup=False)
            yield TickBox("Start from the last settings for this area", id="use-last")
            yield Static("", id="form-error", classes="error", markup=False)
            with Horizontal(id="form-buttons"):
                yield Button("Start session", id="start", compact=True, variant="primary")
                yield Button("Cancel", id="cancel", compact=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#use-last", Checkbox).display = False
        self.query_one("#plan-fields").display = False
        self.query_one("#course-refusal").display = False
        for row in self.query(".early"):
            row.display = False
        self._show_console_trouble()
        self._show_envelope()
        problem = self.laserlog.controller.link_problem()
        if problem:
            self.query_one("#form-error", Static).update(problem)
        first = "client" if self.laserlog.last_operator else "operator"
        # Focused now, not later (`focus()` waits its turn behind keys already typed).
        field = self.query_one(f"#{first}", Input)
        self.set_focus(field)
        self.call_after_refresh(self._show_cursor, field)
        self._show_history()
        self.keys_ready = True
        self.laserlog.release_keys()

    def _show_cursor(self, field: Input) -> None:
        """Put the terminal's cursor in the field, now that the field has its place."""
        if field.has_focus:
            self.app.cursor_position = field.cursor_screen_offset

    def _show_console_trouble(self, trouble: str | None = None) -> None:
        """Ask for a reason when the console reports a fault or an open interlock."""
        if trouble is None:
            trouble = self.laserlog.controller.console_trouble()
        box = self.query_one("#console-trouble", Static)
        box.update(f"{trouble}. A session starts only with your reason and passphrase:"
                   if trouble else "")
        box.display = bool(trouble)
        self.query_one("#override-row").display = bool(trouble)
        for row in self.query("#override-pass-row"):
            row.display = bool(trouble)

    def _override(self) -> str:
        box = self.query_one("#override", Input)
        return box.value.strip() if self.query_one("#override-row").display else ""

    # -- reading the form -------------------------------------------------------------------
    def _passphrase(self) -> str | None:
        """Return the operator's passphrase: asked by the site, or for a start over a fault."""
        for name in ("#passphrase", "#override-passphrase"):
            found = self.query(name)
            if found and cast(Input, found.first()).value:
                return cast(Input, found.first()).value
        return None

    def values(self) -> dict[str, str]:
        return {name: self.query_one(f"#{name}", Input).value for name in FIELDS}

    def checks(self) -> dict[str, bool]:
        return {item.key: self.query_one(f"#check-{item.key}", Checkbox).value
                for item in self.laserlog.checklist}

    def refusals(self) -> dict[str, str]:
        """Return why each refused field is refused: the contract `record` holds to, too."""
        controller = self.laserlog.controller
        return controller.contract.refusals(self.values(), self.checks(),
                                            controller.profile.wavelengths_nm,
                                            profile=controller.profile)

    def _show_envelope(self) -> None:
        """Show the skin type's envelope on this console (nothing before a type is typed)."""
        controller = self.laserlog.controller
        line = controller.contract.envelope_line(controller.profile, self.values()["skin"])
        box = self.query_one("#envelope-line", Static)
        box.update(line)
        box.display = bool(line)

    def course_request(self) -> CourseRequest:
        """Return what the form asks of courses: the course and an officer's override."""
        early = self.query_one("#early-row").display
        return CourseRequest(self.query_one("#course", Input).value,
                             self.query_one("#test-spot", Checkbox).value,
                             self.query_one("#early-officer", Input).value.strip()
                             if early else "", "",
                             self.query_one("#early-reason", Input).value if early else "")

    def _show_course(self) -> str:
        """Show the course line (or why the course rules refuse the start); return the
        refusal, "" when there is none."""
        controller = self.laserlog.controller
        request = self.course_request()
        line = self.query_one("#course-line", Static)
        if self.new_course_wanted():
            return self._show_new_course(request)
        early = False
        try:
            plan = controller.contract.course_start(
                self.laserlog.reader.conn, request, self.values(), controller.profile.id,
                bare=True)
        except TooEarly as exc:
            refusal, early = str(exc), True
            plan = None
        except LaserlogError as exc:
            refusal, plan = str(exc), None
        else:
            refusal = ""
        if early or (plan is not None and plan.override_by):
            for row in self.query(".early"):
                row.display = True
        self.query_one("#course-error", Static).update(refusal)
        # Beside the officer's row too: on a small screen the Course field is scrolled away.
        shown = self.query_one("#course-refusal", Static)
        shown.update(refusal if early else "")
        shown.display = early
        if plan is not None and plan.interval is not None:
            line.update(plan.interval.line())
        elif early:
            wanted = courses.find(self.laserlog.reader.conn, int(request.course.strip()
                                                                  .removeprefix("#")))
            line.update(courses.interval(self.laserlog.reader.conn, wanted, courses.now(),
                                         controller.contract_zone()).line()
                        if wanted is not None else "")
        else:
            line.update(self._open_courses() if not request.course.strip() else "")
        return refusal

    def new_course_wanted(self) -> bool:
        """Return whether the technician asked for a new course."""
        return self.query_one("#new-course", Checkbox).value

    def _open_courses(self) -> str:
        """Return the client's open courses for the area typed, for a start without one."""
        values = self.values()
        client, area = values["client"].strip(), " ".join(values["area"].split()).lower()
        if not client or not area:
            return ""
        found = [c for c in courses.listed(self.laserlog.reader.conn, client)
                 if c.is_open and c.area.lower() == area]
        if not found:
            return f"no open course for {client}, {area}: tick New course to plan one"
        return f"open course for {client}, {area}: " + ", ".join(
            f"{c.id} ({c.indication}, {c.planned_sessions} sessions)" for c in found)

    def plan(self) -> tuple[CoursePlan | None, dict[str, str]]:
        """Return the new course's plan as typed, and why each refused field is refused."""
        values: dict[str, str | None] = dict(self.values())
        for name, _, _ in PLAN_FIELDS:
            values[name] = self.query_one(f"#{name}", Input).value
        if not (values["interval"] or "").strip():
            values["interval"] = None  # the site's window for the indication
        return plan_refusals(self.laserlog.controller.contract, values, PLAN_NAMES)

    def _show_new_course(self, request: CourseRequest) -> str:
        """Show the new course's plan on the course line (or why it is refused); return the
        refusal beside Course, "" when there is none."""
        controller = self.laserlog.controller
        policy = controller.contract.courses
        indication = self.query_one("#indication", Input).value.strip().lower()
        window = policy.intervals.get(indication)
        self.query_one("#interval", Input).placeholder = (
            f"empty: site's {window.min_days}-{window.max_days} days"
            if window is not None else "MIN-MAX days, e.g. 21-42")
        for row in self.query(".early"):
            row.display = False
        self.query_one("#course-refusal", Static).display = False
        refusal = ""
        if request.course.strip():
            refusal = "a new course or a course ID, not both: empty the course ID"
        else:
            values = self.values()
            try:
                client = controller.contract.client_ref(values["client"])
                skin = normalise_skin_type(values["skin"])
            except SessionError:
                pass  # the field beside says what is wrong
            else:
                refusal = new_course_refusal(controller.contract, self.laserlog.reader.conn,
                                             client, skin, controller.profile.id,
                                             request.test_spot)
        self.query_one("#course-error", Static).update(refusal)
        plan, _ = self.plan()
        line = self.query_one("#course-line", Static)
        if plan is None:
            # The field is too narrow for the list: the line across the form holds it.
            line.update("new course: type its indication ("
                        + ", ".join(policy.indications) + ") and planned sessions")
        else:
            target = (f", target {plan.window.target_days} days"
                      if plan.window.target_days is not None else "")
            line.update(f"new course: {plan.indication}, session 1 of {plan.sessions} \u00b7 "
                        f"window {plan.window.text()} days{target} \u00b7 recorded when the "
                        "session starts")
        return refusal

    def _show_consent(self) -> None:
        """Say which consent version the witness confirms (or why the site's text is not
        taken)."""
        found = self.query("#consent-line")
        if not found:
            return
        try:
            document = self._site_document("consent")
        except LaserlogError as exc:
            text = str(exc)
        else:
            text = (f"Consent {document.version} ({document.path.name}): agreed before the "
                    "witness; without one no consent is recorded" if document is not None
                    else "")
        cast(Static, found.first()).update(text)

    def _site_document(self, kind: str) -> Document | None:
        """Return the site's consent or aftercare text as its file holds it now."""
        return site_document(kind, None, "", self.laserlog.controller.db_path)

    def new_course(self) -> tuple[NewCourse | None, dict[str, str]]:
        """Return the course to record at the start (None: none asked or refused) and why
        each refused field is refused."""
        from laserlog.tui.controller import NewCourse

        if not self.new_course_wanted():
            return None, {}
        plan, errors = self.plan()
        errors = {name: text for name, text in errors.items() if name not in FIELDS}
        witness = self.query("#witness")
        who = cast(Input, witness.first()).value.strip() if witness else ""
        consent = None
        if who:
            try:
                consent = self._site_document("consent")
            except LaserlogError as exc:
                errors["witness"] = str(exc)
        if plan is None or errors:
            return None, errors
        passphrase = self.query_one("#witness-passphrase", Input).value if who else ""
        return NewCourse(plan, consent, who, passphrase), {}

    def _plan_errors(self, errors: dict[str, str], only: set[str] | None = None) -> None:
        for name in (*PLAN_NAMES, "witness"):
            if name not in FIELDS and (only is None or name in only) and self.query(
                    f"#{name}-error"):
                self.query_one(f"#{name}-error", Static).update(errors.get(name, ""))

    def _show_errors(self, errors: dict[str, str], only: set[str] | None = None) -> None:
        names = list(FIELDS) + [f"check-{item.key}" for item in self.laserlog.checklist]
        for name in names:
            if only is None or name in only:
                self.query_one(f"#{name}-error", Static).update(errors.get(name, ""))

    # -- events -----------------------------------------------------------------------------
    def on_input_changed(self, event: Input.Changed) -> None:
        name = event.input.id or ""
        if name in self.touched:
            self._show_errors(self.refusals(),
                              {name})
        if name in ("client", "area", "course"):
            self._show_history()
        if name == "skin":
            self._show_envelope()
        if name in ("client", "area", "skin", "course", "early-officer", "early-reason",
                    *(field for field, _, _ in PLAN_FIELDS)):
            self._show_course()
        if name in self.touched and name in PLAN_NAMES:
            self._plan_errors(self.plan()[1], {name})

    def on_descendant_blur(self, event: object) -> None:
        widget = getattr(event, "widget", None)
        name = getattr(widget, "id", None)
        if isinstance(widget, Input) and name in FIELDS and widget.value:
            self.touched.add(name)
            self._show_errors(self.refusals(),
                              {name})
        elif isinstance(widget, Input) and name in PLAN_NAMES and widget.value:
            self.touched.add(name)
            self._plan_errors(self.plan()[1], {name})

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        name = event.checkbox.id or ""
        if name == "new-course":
            self.query_one("#plan-fields").display = event.value
            self._show_consent()
            if event.value and self.focused is event.checkbox:
                # Ticked from the keyboard: the plan it opened is what comes next, not the
                # Test spot box beside it.
                self.query_one("#indication", Input).focus()
        if name in ("new-course", "test-spot"):
            self._show_course()
            self._show_history()
        if name.startswith("check-"):
            self._show_errors(self.refusals(),
                              {name})

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_submit()
        else:
            self.action_cancel()

    def _show_history(self) -> None:
        values = self.values()
        client, area = values["client"].strip(), values["area"].strip()
        box = self.query_one("#returning", Static)
        use_last = self.query_one("#use-last", Checkbox)
        self.history, self.last_area = None, None
        try:
            self.laserlog.controller.contract.client_ref(client)
        except SessionError:
            box.update("")
            use_last.display = False
            return
        history = client_history(self.laserlog.reader, client)
        self.history = history
        if not history.sessions:
            # The course line says which session of a course this is, when it is one.
            box.update(f"New client {client}: no earlier sessions.")
            use_last.display = False
            return
        lines = [f"Returning client {client}: {history.sessions} earlier session(s), "
                 f"{history.energy_j:.3f} J in all."]
        for key, a in sorted(history.areas.items(), key=lambda kv: -kv[1].last_session_id):
            mark = ">" if area and key == area.lower() else " "
            lines.append(f"{mark} {a.area}: {a.sessions} session(s), {a.energy_j:.3f} J, "
                         f"{a.pulses} pulses; last {a.last_started_utc[:10]} (#{a.last_session_id}, "
                         f"{a.last_profile_id}): {settings_text(a.last_settings)}")
        if not (self.query_one("#course", Input).value.strip() or self.new_course_wanted()):
            # With a course chosen, the course line numbers the session in its plan.
            lines.append(f"This is session {history.course_number(area or None)} of the "
                         "course" + (f" for {area}." if area else "."))
        box.update("\n".join(lines))
        known = history.areas.get(area.lower()) if area else None
        profile = self.laserlog.controller.profile
        usable = known is not None and known.last_profile_id == profile.id and any(
            name in known.last_settings and param.settable
            for name, param in profile.parameters.items())
        self.last_area = known if usable else None
        use_last.display = usable
        if not usable:
            use_last.value = False

    # -- actions ----------------------------------------------------------------------------
    def action_move_focus(self, step: int) -> None:
        """Move to the next (1) or previous (-1) field, tick box or button."""
        if step > 0:
            self.focus_next()
        else:
            self.focus_previous()

    def action_next_after_input(self) -> None:
        """Enter in a text field moves on; on a tick box or a button it does their own thing."""
        if not isinstance(self.focused, Input):
            raise SkipAction()
        self.focus_next()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        values, checks = self.values(), self.checks()
        errors = self.refusals()
        self.touched.update(FIELDS)
        self._show_errors(errors)
        course_refusal = "" if errors else self._show_course()
        if course_refusal:
            errors["course"] = course_refusal
        new_course, plan_errors = self.new_course()
        self._plan_errors(plan_errors)
        errors.update(plan_errors)
        aftercare: Document | None = None
        try:
            aftercare = self._site_document("aftercare")
        except LaserlogError as exc:
            errors["form"] = str(exc)
        if errors:
            self.query_one("#form-error", Static).update(
                errors.pop("form", "") or
                f"{len(errors)} field(s) need attention; see beside each.")
            if errors:
                self.query_one(f"#{next(iter(errors))}").focus()
            return
        info = SessionInfo(values["operator"], values["client"], values["area"] or None,
                           values["skin"], eyewear_checked=checks.get(EYEWEAR_KEY, False),
                           checklist=checks)
        apply: dict[str, float] = {}
        if self.last_area is not None and self.query_one("#use-last", Checkbox).value:
            profile = self.laserlog.controller.profile
            apply = {name: value for name, (value, _) in self.last_area.last_settings.items()
                     if name in profile.parameters and profile.parameters[name].settable}
            # The handpiece goes first: it decides which spot sizes are allowed.
            apply = dict(sorted(apply.items(), key=lambda kv: kv[0] != "handpiece"))
        self.query_one("#form-error", Static).update("starting...")
        self.run_worker(self._start(info, apply, self._override(), self.course_request(),
                                    new_course, aftercare), group="start", exclusive=True)

    async def _start(self, info: SessionInfo, apply: dict[str, float], override: str,
                     course: CourseRequest, new_course: NewCourse | None = None,
                     aftercare: Document | None = None) -> None:
        app = self.laserlog
        try:
            session_id = await asyncio.wrap_future(
                app.controller.start_session(
                    info, apply, self._passphrase(), override_reason=override, course=course,
                    officer_passphrase=self.query_one("#early-passphrase", Input).value,
                    new_course=new_course, aftercare=aftercare))
        except ConsoleNotReady:
            self._show_console_trouble(app.controller.console_trouble())
            self.query_one("#form-error", Static).update(
                "not started: type why it is safe to start anyway, then Ctrl+S")
            self.query_one("#override", Input).focus()
            return
        except LaserlogError as exc:
            self.query_one("#form-error", Static).update(f"not started: {exc}")
            return
        app.last_operator = info.operator_id.strip()
        self.dismiss(session_id)
