"""Moved to :mod:`hookgate.testing.gemini`, the plugin authors' kit; re-exported for the suite."""

from hookgate.testing.gemini import *  # noqa: F403
from hookgate.testing.gemini import __all__ as __all__
