"""Errors of the shared core.

    CoreError
    └── ConfigError      a MLSFEEDS_* variable is missing or malformed (names the variable)
"""


class CoreError(Exception):
    """Root of the errors raised by ``core``."""


class ConfigError(CoreError):
    """A setting is missing or malformed; the message names the variable."""
