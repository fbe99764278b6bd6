"""The console link: serial transport, the driver base, port locks and transcripts."""
