"""The services' public REST APIs, called with the signed-in user's token: the console's only way to data.

One `ServiceApi` per service; a refusal (4xx/5xx) becomes `ApiRefused` with the service's own reason, which
the pages show to the user as it is (the API decides what a role may do; the console only hides buttons)."""

from dataclasses import dataclass
from typing import Any

import httpx


class ApiRefused(Exception):
    """A service answered with an error; `detail` is its reason."""

    def __init__(self, service: str, status_code: int, detail: str) -> None:
        super().__init__(f"{service} answered {status_code}: {detail}")
        self.service, self.status_code, self.detail = service, status_code, detail


@dataclass(frozen=True)
class ServiceApi:
    """One service's API as seen by one user."""

    name: str
    client: httpx.AsyncClient
    base_url: str
    token: str

    async def call(self, method: str, path: str, **options: Any) -> httpx.Response:
        """The response of a 2xx; ApiRefused with the reason otherwise (and when the service is unreachable)."""
        headers = {"authorization": f"Bearer {self.token}"}
        try:
            response = await self.client.request(method, f"{self.base_url}{path}", headers=headers, **options)
        except httpx.HTTPError as error:
            raise ApiRefused(self.name, 503, f"unreachable ({type(error).__name__})") from error
        if response.status_code >= 400:
            raise ApiRefused(self.name, response.status_code, reason_of(response))
        return response

    async def get(self, path: str, **params: Any) -> Any:
        return (await self.call("GET", path, params=params)).json()

    async def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self.call(method, path, json=body)
        return response.json() if response.content else None


def reason_of(response: httpx.Response) -> str:
    """FastAPI's `detail` (a sentence, or validation errors joined), else the body's start."""
    try:
        detail = response.json().get("detail")
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(detail, list):
        return "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail)
    return str(detail)


@dataclass(frozen=True)
class Apis:
    """Every service a page may call, for the signed-in user."""

    identity: ServiceApi
    matcher: ServiceApi
    reporting: ServiceApi
    audit: ServiceApi


@dataclass(frozen=True)
class ApiLocations:
    identity: str
    matcher: str
    reporting: str
    audit: str

    def for_user(self, client: httpx.AsyncClient, token: str) -> Apis:
        return Apis(
            identity=ServiceApi("identity", client, self.identity.rstrip("/"), token),
            matcher=ServiceApi("matcher", client, self.matcher.rstrip("/"), token),
            reporting=ServiceApi("reporting", client, self.reporting.rstrip("/"), token),
            audit=ServiceApi("audit", client, self.audit.rstrip("/"), token),
        )
