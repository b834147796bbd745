"""Moved to :mod:`hookgate.testing.openai`, the plugin authors' kit; re-exported for the suite."""

from hookgate.testing.openai import *  # noqa: F403
from hookgate.testing.openai import __all__ as __all__
