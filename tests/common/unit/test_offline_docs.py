"""`/docs` and `/redoc` of every service work without internet: each page and every file it loads come from the
service itself (the browser test of the console loads identity's /docs in Chromium with the network cut)."""

import re
from html.parser import HTMLParser

import httpx
import pytest

from services.common.http import create_app


class Links(HTMLParser):
    """Every src, href and spec-url (ReDoc's) of a page, and the URLs named in its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href", "spec-url") and value]
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.urls += re.findall(r"""["'](https?://[^"']+|/[^"'\s]*)["']""", data)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_page_and_its_assets_come_from_the_service(page: str) -> None:
    app = create_app("demo", {})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
        response = await client.get(page)
        assert response.status_code == 200
        links = Links()
        links.feed(response.text)
        external = [url for url in links.urls if re.match(r"(https?:)?//", url)]
        assert external == [], f"{page} loads from outside the service: {external}"
        assert "fonts.googleapis" not in response.text and "cdn." not in response.text
        assets = [url for url in links.urls if url.startswith("/docs-assets/")]
        assert len(assets) >= (3 if page == "/docs" else 2)  # script, stylesheet (Swagger UI), favicon
        for asset in assets:
            fetched = await client.get(asset)
            assert fetched.status_code == 200 and len(fetched.content) > 1000, asset
        assert "/openapi.json" in links.urls
        assert (await client.get("/openapi.json")).json()["info"]["title"] == "Revisit demo"
