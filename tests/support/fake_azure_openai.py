"""Moved to :mod:`hookgate.testing.azure_openai`, the plugin authors' kit; re-exported for the suite."""

from hookgate.testing.azure_openai import *  # noqa: F403
from hookgate.testing.azure_openai import __all__ as __all__
