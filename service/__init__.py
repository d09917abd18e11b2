"""The SOAP facade: a spyne application over the shared database."""
