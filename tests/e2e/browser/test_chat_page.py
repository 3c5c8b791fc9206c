"""The chat page at ``/``, in a real headless browser, against a real server."""

from __future__ import annotations

from playwright.async_api import expect

from tests.support.browser import chromium
from tests.support.server import RunningServer
from tests.support.wsclient import connect, recv


async def test_chat_page_sends_and_lists_messages(clean_log: RunningServer) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(clean_log.http + "/", timeout=15_000)
        await expect(page.locator("#state")).to_have_text("connected", timeout=10_000)
        client_id = await page.locator("#ws-id").text_content()
        assert client_id is not None
        assert client_id.isdigit()

        await page.fill("#messageText", "hello from the browser")
        await page.click("#send")
        messages = page.locator("#messages li")
        await expect(messages.nth(0)).to_have_text("You wrote: hello from the browser")
        await expect(messages.nth(1)).to_have_text(
            f"Client #{client_id} says: hello from the browser"
        )

        # Another chat member's message appears on the page too.
        async with connect(f"{clean_log.ws}/ws/7") as other:
            await other.send("hi browser")
            assert await recv(other) == "You wrote: hi browser"
            await expect(messages.nth(2)).to_have_text("Client #7 says: hi browser")
        await expect(messages.nth(3)).to_have_text("Client #7 left the chat")
        await page.screenshot(path="/tmp/roomcast-chat.png")
