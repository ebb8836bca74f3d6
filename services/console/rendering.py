"""Pages are Jinja templates rendered on the server; a change is a plain form POST answered by a redirect
(POST-redirect-GET), whose outcome the next page shows from the `notice` or `error` query parameter."""

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from services.console.adapters.apis import ApiRefused
from services.console.session import User

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

NAVIGATION = (
    ("/persons", "Persons"),
    ("/review", "Review"),
    ("/reports", "Reports"),
    ("/staff", "Staff"),
    ("/sites", "Sites"),
    ("/cameras", "Cameras"),
    ("/devices", "Devices"),
    ("/audit", "Audit"),
)


def moment(value: str | datetime | None) -> str:
    """An API timestamp as `YYYY-MM-DD HH:MM` UTC (the API's own zone), or an em dash."""
    if value is None:
        return "—"
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return f"{when:%Y-%m-%d %H:%M}"


templates.env.filters["moment"] = moment


def page(request: Request, template: str, user: User | None, title: str, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        {
            "user": user,
            "title": title,
            "navigation": NAVIGATION,
            "notice": request.query_params.get("notice"),
            "error": request.query_params.get("error"),
            **context,
        },
    )


def redirect(path: str, *, notice: str | None = None, error: str | None = None) -> RedirectResponse:
    """303 to `path` (a GET), carrying what happened for the next page to say."""
    message = {key: value for key, value in (("notice", notice), ("error", error)) if value}
    separator = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{separator}{urlencode(message)}" if message else path, status_code=303)


def render_refusal(request: Request, refusal: ApiRefused) -> HTMLResponse:
    """A page whose service refused: the service's reason, with the status it answered (403 stays 403)."""
    response = templates.TemplateResponse(
        request,
        "refused.html",
        {"user": None, "title": "Not possible", "navigation": NAVIGATION, "refusal": refusal},
        status_code=refusal.status_code if 400 <= refusal.status_code < 600 else 502,
    )
    return response
