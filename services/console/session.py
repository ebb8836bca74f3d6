"""Who is signed in: the user's token lives in an HttpOnly, SameSite=Strict cookie, checked on every page.

The console verifies the token only to know whom to show what (tenant, roles); the services verify it again
on every call, so a forged or expired cookie gets nothing from them either."""

from dataclasses import dataclass
from typing import Annotated

import httpx
import jwt
from fastapi import Depends, Request

from services.common.auth import Principal, Role, TokenVerifier
from services.console.adapters.apis import ApiLocations, Apis

SESSION_COOKIE = "revisit_session"
PEOPLE_ROLES = frozenset({Role.ADMIN, Role.ANALYST, Role.VIEWER})


class SignInRequired(Exception):
    """No valid session: the page answers with a redirect to the sign-in page, saying why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class User:
    principal: Principal
    apis: Apis

    @property
    def tenant_id(self) -> str:
        return self.principal.tenant_id

    @property
    def may_change(self) -> bool:
        """Admins change things (merge, erase, enrol, register); the pages show change buttons to them only."""
        return Role.ADMIN in self.principal.roles

    @property
    def may_review(self) -> bool:
        """Duplicate suggestions and the matcher's views are for admins and analysts."""
        return bool(self.principal.roles & {Role.ADMIN, Role.ANALYST})

    @property
    def role_names(self) -> str:
        return ", ".join(sorted(role.value for role in self.principal.roles))


def principal_of(token: str, verifier: TokenVerifier) -> Principal:
    """The token's principal, if it is valid and held by a person (not a device): SignInRequired otherwise."""
    try:
        principal = verifier.verify(token)
    except jwt.InvalidTokenError as error:
        raise SignInRequired(f"the token was refused: {error}") from error
    if not principal.roles & PEOPLE_ROLES:
        raise SignInRequired("the console is for people: the token needs the role admin, analyst or viewer")
    return principal


async def current_user(request: Request) -> User:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired("sign in to continue")
    principal = principal_of(token, request.app.state.token_verifier)
    locations: ApiLocations = request.app.state.api_locations
    client: httpx.AsyncClient = request.app.state.http_client
    return User(principal, locations.for_user(client, token))


SignedIn = Annotated[User, Depends(current_user)]
