"""Fixed-width replies parsed by column (e.g. CR LF then exactly 15 characters).

The command exchange is the line protocol's (the framer is chosen from the transport's
`reply_width`); this module adds the checks a fixed-width profile needs: every reply
template must render to exactly the declared width, so the simulator and the driver agree
column by column.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from laserlog.drivers.line import Device, Driver
from laserlog.drivers.line import check_profile as check_line_profile
from laserlog.errors import ProfileError

if TYPE_CHECKING:
    from laserlog.profile import Profile
    from laserlog.template import Template

__all__ = ["Device", "Driver", "check_profile"]


def _sample(template: Template, profile: Profile, key: str) -> str:
    values: dict[str, object] = {}
    for name in template.fields:
        values[name] = 0 if name in template.integer_fields else 0.0
    if "serial" in values:
        values["serial"] = profile.simulator.serial
    try:
        return template.render(**values)
    except (ValueError, TypeError) as exc:
        raise ProfileError(profile.source, key, f"template does not render: {exc}",
                           value=template.text) from None


def check_profile(profile: Profile) -> None:
    """Check the line keys, then that every reply template has the declared width."""
    check_line_profile(profile)
    width = profile.transport.reply_width
    if width is None:
        raise ProfileError(profile.source, "transport.reply_width", "missing",
                           expected="the fixed width of every reply, in characters")
    replies: list[tuple[str, Template]] = []
    for name, param in profile.parameters.items():
        for attr in ("reply", "set_reply"):
            template = getattr(param, attr)
            if template is not None:
                replies.append((f"parameters.{name}.{attr}", template))
    if profile.status.reply is not None:
        replies.append(("status.reply", profile.status.reply))
    for key, template in replies:
        rendered = _sample(template, profile, key)
        if len(rendered) != width:
            raise ProfileError(profile.source, key, f"renders {len(rendered)} characters",
                               value=rendered, expected=f"exactly {width} (transport.reply_width)")
