"""The command line: one module per subsystem's commands, shared argument types, one dispatch."""
