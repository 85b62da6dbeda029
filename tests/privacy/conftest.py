"""The privacy attacks of issue 11 run against the same real platform as the consent tests."""

from tests.consent.conftest import platform  # noqa: F401 - the package-scoped five-service platform
