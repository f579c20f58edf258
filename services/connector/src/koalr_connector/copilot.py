"""Validating a GitHub Copilot token at connect and rotation time.

GitHub is asked before anything is stored (:class:`koalr_providers.github.GitHubDetector`): the
billing gives the plan (``plan_type``), and a probe of the usage-metrics reports tells whether the
organisation's "Copilot usage metrics" policy is on. A token that reads billing but not the
reports still connects: the integration is ``degraded`` with ``metrics_disabled`` (seats and spend
still sync).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from koalr_connector.errors import ConnectorError, InvalidRequestError
from koalr_connector.integrations import METRICS_DISABLED_MESSAGE
from koalr_contracts import ErrorCode, Plan
from koalr_providers.errors import OrgNotFoundError
from koalr_providers.github import GitHubDetector

GITHUB_LOGIN: Final = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?$")
"""A GitHub login: letters, digits and inner hyphens, at most 39 characters."""


class GithubOrgNotFoundError(ConnectorError):
    code = "github_org_not_found"


@dataclass(frozen=True, slots=True)
class CopilotCheck:
    """What GitHub said about a token: the org's plan, and the standing error if any."""

    plan: Plan
    degraded_by: tuple[ErrorCode, str] | None


def github_login(github_org: str) -> str:
    """The organisation's login as stored (``external_id``): GitHub logins ignore case."""
    if not GITHUB_LOGIN.match(github_org):
        raise InvalidRequestError(
            "`github_org` must be a GitHub organisation's login, as in github.com/<login>: "
            "letters, digits and inner hyphens, at most 39 characters."
        )
    return github_org.lower()


class CopilotValidator:
    """Asks GitHub about a token for an organisation (see the module's description)."""

    def __init__(self, detector: GitHubDetector) -> None:
        self._detector = detector

    async def check(self, token: str, login: str) -> CopilotCheck:
        """Raises the provider's errors (``invalid_api_key``, ``insufficient_permissions``,
        ``provider_unavailable``), and :class:`GithubOrgNotFoundError` for an unknown org."""
        try:
            plan, metrics_enabled = await self._detector.detect(token, login)
        except OrgNotFoundError as exc:
            raise GithubOrgNotFoundError(exc.message) from None
        if metrics_enabled:
            return CopilotCheck(plan, None)
        return CopilotCheck(plan, ("metrics_disabled", METRICS_DISABLED_MESSAGE))
