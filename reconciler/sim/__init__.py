"""A Novita.ai API simulator written from NOVITA_API.md alone: it shares no code with the client."""
