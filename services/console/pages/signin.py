"""`/` and `/signin`: sign in with a token; `/session`: keep it in the session cookie; `/signout`: forget it.

The dev link `http://127.0.0.1:8080/#token=<jwt>` carries the token in the URL fragment, which browsers never
send to a server: `static/signin.js` reads it (or `access_token` from an OIDC provider's implicit-flow
redirect), clears it from the address bar and posts it here. Without JavaScript, the token can be pasted."""

import time
from typing import Annotated

import jwt
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.common.auth import TokenVerifier
from services.console.config import ConsoleSettings
from services.console.rendering import page, redirect
from services.console.session import SESSION_COOKIE, SignInRequired, principal_of

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(request: Request) -> HTMLResponse:
    """The sign-in link's target: the page's script signs in with the fragment's token, else offers the form."""
    return sign_in_page(request)


@router.get("/signin")
async def sign_in_form(request: Request) -> HTMLResponse:
    return sign_in_page(request)


def sign_in_page(request: Request) -> HTMLResponse:
    settings: ConsoleSettings = request.app.state.settings
    return page(
        request,
        "signin.html",
        None,
        "Sign in",
        reason=request.query_params.get("reason"),
        provider_url=settings.console_signin_url,
    )


@router.post("/session")
async def sign_in(request: Request, token: Annotated[str, Form(max_length=16384)]) -> Response:
    """Keep a valid person's token in an HttpOnly, SameSite=Strict cookie until the token expires."""
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        principal_of(token.strip(), verifier)  # a refused token never becomes a cookie
    except SignInRequired as refusal:
        return redirect("/signin", error=refusal.reason)
    settings: ConsoleSettings = request.app.state.settings
    response = RedirectResponse("/persons", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token.strip(),
        max_age=max(60, expires_at(token) - int(time.time())),
        httponly=True,
        samesite="strict",
        secure=settings.console_secure_cookie,
        path="/",
    )
    return response


def expires_at(token: str) -> int:
    """The verified token's `exp` (the verifier required it)."""
    return int(jwt.decode(token.strip(), options={"verify_signature": False})["exp"])


@router.post("/signout")
async def sign_out() -> Response:
    response = redirect("/signin", notice="signed out")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
