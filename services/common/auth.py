"""JWT (RS256) verification for the REST services: who is calling, for which tenant, with which roles."""

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer


class Role(StrEnum):
    ADMIN = "admin"
    ANALYST = "analyst"
    VIEWER = "viewer"
    DEVICE = "device"
    PLATFORM = "platform"


@dataclass(frozen=True)
class Principal:
    subject: str
    tenant_id: str
    roles: frozenset[Role]

    def may_access(self, tenant_id: str) -> bool:
        return tenant_id == self.tenant_id or Role.PLATFORM in self.roles


class TokenVerifier:
    """Checks signature, expiry, issuer and audience, then reads `tenant_id` and `roles`."""

    def __init__(self, public_key_pem: str, issuer: str, audience: str) -> None:
        self._public_key = public_key_pem
        self._issuer = issuer
        self._audience = audience

    def verify(self, token: str) -> Principal:
        claims = jwt.decode(
            token,
            self._public_key,
            algorithms=["RS256"],
            issuer=self._issuer,
            audience=self._audience,
            options={"require": ["exp", "sub", "iss", "aud"]},
        )
        tenant_id = claims.get("tenant_id")
        if not isinstance(tenant_id, str) or not tenant_id:
            raise jwt.InvalidTokenError("token has no tenant_id claim")
        try:
            roles = frozenset(Role(role) for role in claims.get("roles", []))
        except ValueError as error:
            raise jwt.InvalidTokenError(f"unknown role: {error}") from error
        return Principal(subject=str(claims["sub"]), tenant_id=tenant_id, roles=roles)


bearer = HTTPBearer(auto_error=False)


def require_roles(*allowed: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A FastAPI dependency: the caller's Principal, if its token is valid and has one of `allowed`."""

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Principal:
        if credentials is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token")
        verifier: TokenVerifier = request.app.state.token_verifier
        try:
            principal = verifier.verify(credentials.credentials)
        except jwt.InvalidTokenError as error:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid token: {error}") from error
        if not principal.roles & set(allowed):
            roles = ", ".join(sorted(role.value for role in allowed))
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"requires one of the roles: {roles}")
        return principal

    return dependency


def issue_token(
    private_key_pem: str,
    *,
    subject: str,
    tenant_id: str,
    roles: list[str],
    issuer: str,
    audience: str,
    ttl_seconds: int = 12 * 3600,
) -> str:
    """Sign a token; used by `make dev` to hand out a dev token and by tests. Production tokens come from the IdP."""
    import time

    now = int(time.time())
    claims = {
        "sub": subject,
        "tenant_id": tenant_id,
        "roles": roles,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, private_key_pem, algorithm="RS256")


PRIVATE_KEY_ENV = "REVISIT_JWT_PRIVATE_KEY"


def dev_private_key() -> str:
    """The key that signs dev tokens: REVISIT_JWT_PRIVATE_KEY (PEM), else the one `make dev` keeps in
    `.dev/keys/jwt-private.pem`; SystemExit naming both otherwise."""
    import os

    from services.common.devsettings import dev_dir

    if os.environ.get(PRIVATE_KEY_ENV):
        return os.environ[PRIVATE_KEY_ENV]
    path = dev_dir() / "keys" / "jwt-private.pem"
    if not path.exists():
        raise SystemExit(
            f"error: no signing key: {PRIVATE_KEY_ENV} is not set and {path} does not exist "
            "(`make dev` creates it; production tokens come from the identity provider)"
        )
    return path.read_text()


def main(argv: list[str] | None = None) -> None:
    """`python -m services.common.auth mint --role analyst --tenant demo`: print a dev token."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m services.common.auth", description="Dev tokens.")
    commands = parser.add_subparsers(dest="command", required=True)
    mint = commands.add_parser("mint", help="print a signed token for a tenant and role(s)")
    names = [role.value for role in Role]
    mint.add_argument("--role", action="append", required=True, choices=names, help="repeat for several roles")
    mint.add_argument("--tenant", required=True)
    mint.add_argument("--subject", default="dev", help="who the token is for (the audit log's actor)")
    mint.add_argument("--hours", type=float, default=12, help="validity")
    mint.add_argument("--issuer", default="revisit")
    mint.add_argument("--audience", default="revisit")
    args = parser.parse_args(argv)
    token = issue_token(
        dev_private_key(),
        subject=args.subject,
        tenant_id=args.tenant,
        roles=sorted(set(args.role)),
        issuer=args.issuer,
        audience=args.audience,
        ttl_seconds=int(args.hours * 3600),
    )
    print(token)


if __name__ == "__main__":
    main()
