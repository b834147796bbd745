"""Moved to :mod:`hookgate.testing.anthropic`, the plugin authors' kit; re-exported for the suite."""

from hookgate.testing.anthropic import *  # noqa: F403
from hookgate.testing.anthropic import __all__ as __all__
