"""A Novita.ai API simulator written from Novita's API documentation and what the official SDK sends: it shares no
code with the client."""
