"""Loopback TCP ports for the servers the tests start, safe when test processes run side by side.

A port that was merely free a moment ago may be handed to another process (another pytest
worker asking the kernel for any free port) before our server binds it: two servers then
race for one port, and a test may talk to the other one's server. `free_port` reserves the
port instead: it leaves the port in TIME_WAIT, where the kernel hands it to nobody who asks
for "any port", while a server that sets SO_REUSEADDR (uvicorn, PostgreSQL, ser2net) may
still bind it. Nobody listens on it until our server does, so it also serves as a port
where nothing answers.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """Reserve a TCP port on 127.0.0.1 for about a minute and return it; nothing listens on it."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        # One connection accepted and closed by the listening side first puts the port
        # into TIME_WAIT on that side.
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            accepted.close()
            client.recv(1)
    return port
