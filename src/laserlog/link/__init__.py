"""The console link: serial transport, driver base, port lock, transcript files, shared names."""
