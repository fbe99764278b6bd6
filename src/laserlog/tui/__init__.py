"""The technician's Textual session screen: a front end over recording and review."""
