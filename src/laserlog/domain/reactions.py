"""The vocabulary of what follows a session: endpoint scales, adverse-event kinds, outcomes."""

from __future__ import annotations

#: Immediate endpoints and their scales (inclusive).
GRADES = {"erythema": (0, 3), "oedema": (0, 3), "pain_nrs": (0, 10)}
#: The window after a session's end in which an assessment is the immediate one.
IMMEDIATE_WINDOW_H = 24.0
ADVERSE_KINDS = ("pih", "hypopigmentation", "blister", "burn", "scarring", "infection", "hsv",
                 "other")
SERIOUSNESS = ("serious", "non-serious")
OUTCOMES = ("resolved", "resolving", "not-resolved", "sequelae")
#: Outcome scales entered by hand and their scores (inclusive): GAIS (global aesthetic
#: improvement), an investigator's pore score, the client's satisfaction.
SCALES = {"gais": (1, 5), "pore": (0, 4), "satisfaction": (1, 5)}
