"""Recording a session: pulse completion, limits, the recorder and the review of a session at its start."""
