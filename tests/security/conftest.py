"""Fixtures for the security tests: the would-be thief (a recording TCP listener)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.thief import Thief


@pytest.fixture
def thief() -> Iterator[Thief]:
    listener = Thief()
    yield listener
    listener.close()
