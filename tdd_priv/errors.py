"""Errors that reach the user: each says what is wrong, where, and how to fix it."""

from __future__ import annotations

__all__ = ["ConfigError", "DataValidationError", "TddPrivError"]


class TddPrivError(Exception):
    """Base class for errors that the CLI reports as a message, not a traceback."""


class DataValidationError(TddPrivError, ValueError):
    """The input data cannot be used as given (names the file, the rows and the fix)."""


class ConfigError(TddPrivError, ValueError):
    """A configuration value is invalid or inconsistent with another."""
