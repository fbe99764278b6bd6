"""Recording a session: pulse completion, limits, the recorder, start-of-session checks, shipping."""
