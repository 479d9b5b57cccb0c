#!/usr/bin/env python3
"""A real third-party MCP client through the proxy: the official Python MCP SDK (`mcp`).

Connects to URL with the SDK's own transport (Streamable HTTP or legacy HTTP+SSE) and
`ClientSession`, initializes, lists the tools (must include `echo` and `add`), calls
`echo {"text": "via python"}` and `add {"a": 2, "b": 3}`, and prints one JSON line:

    {"sdk": "1.30.0", "transport": "streamable", "protocol_version": "...",
     "server": "...", "tools": ["add", "echo", ...], "echo": "via python", "add": "5"}

With --denied TOOL the proxy's tool policy is expected to deny TOOL (`add`): it must be
missing from tools/list, and calling it must raise the SDK's `MCPError` (a JSON-RPC error
answer, not a transport failure) after which the session still works (`echo` is called
again); the line then has `"denied": {"code": ..., "message": ...}` instead of `"add"`.

With --bearer the client also sends its own `Authorization` header, which the proxy must
replace with the upstream's credential. Exit status 0 on success; 1 with a message on stderr otherwise (2 for a bad command line).
The whole exchange is bounded by --timeout seconds. Used by tests/tests/python_client.rs
with the venv that .ci/run creates from tests/python/requirements.txt.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

import anyio
from mcp import ClientSession


def wire(model: Any) -> Any:
    """A result as it travels (camelCase names), whatever the SDK's attribute spelling."""
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def tool_text(name: str, result: Any) -> str:
    """The single text content of a successful tool result."""
    data = wire(result)
    if data.get("isError"):
        raise RuntimeError(f"tool {name} reported an error: {json.dumps(data)}")
    texts = [c.get("text") for c in data.get("content", []) if c.get("type") == "text"]
    if len(texts) != 1:
        raise RuntimeError(f"tool {name}: expected one text content, got {json.dumps(data)}")
    return texts[0]


@asynccontextmanager
async def transport_for(url: str, transport: str, headers: dict[str, str]):
    """The SDK's client transport, yielding its streams."""
    if transport == "sse":
        from mcp.client.sse import sse_client

        async with sse_client(url, headers=headers) as streams:
            yield streams
        return
    # The SDK's own client factory (its default timeouts and redirect policy) with our headers.
    from mcp.shared._httpx_utils import create_mcp_http_client

    try:
        # The current name (mcp >= 1.24, and the only one in 2.x).
        from mcp.client.streamable_http import streamable_http_client
    except ImportError:  # older 1.x
        from mcp.client.streamable_http import streamablehttp_client

        async with streamablehttp_client(url, headers=headers) as streams:
            yield streams
        return
    async with create_mcp_http_client(headers=headers) as http_client:
        async with streamable_http_client(url, http_client=http_client) as streams:
            yield streams


async def expect_denied(session: ClientSession, tool: str) -> dict[str, Any]:
    """Calls a tool the proxy must deny; returns the JSON-RPC error the SDK raised."""
    try:
        from mcp.shared.exceptions import MCPError
    except ImportError:  # older 1.x
        from mcp.shared.exceptions import McpError as MCPError
    try:
        result = await session.call_tool(tool, {"a": 2, "b": 3})
    except MCPError as err:
        return {"code": err.error.code, "message": err.error.message}
    raise RuntimeError(f"tool {tool} was not denied: {json.dumps(wire(result))}")


async def check(
    url: str, transport: str, headers: dict[str, str], denied: str | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with transport_for(url, transport, headers) as streams:
        # (read, write) in 2.x; (read, write, get_session_id) in 1.x.
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            init = wire(await session.initialize())
            tools = sorted(t.name for t in (await session.list_tools()).tools)
            missing = {"echo", "add"} - set(tools) - {denied}
            if missing:
                raise RuntimeError(f"tools/list lacks {sorted(missing)}: {tools}")
            echo = tool_text("echo", await session.call_tool("echo", {"text": "via python"}))
            if denied:
                out["denied"] = await expect_denied(session, denied)
                # The session survived the denial.
                echo = tool_text("echo", await session.call_tool("echo", {"text": "via python"}))
            else:
                out["add"] = tool_text("add", await session.call_tool("add", {"a": 2, "b": 3}))
    return out | {
        "sdk": version("mcp"),
        "transport": transport,
        "protocol_version": init.get("protocolVersion"),
        "server": init.get("serverInfo", {}).get("name"),
        "tools": tools,
        "echo": echo,
    }


def describe(exc: BaseException) -> str:
    """One readable line per leaf exception (the SDK's task groups wrap them in groups)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    text = f"{type(exc).__name__}: {exc}"
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "text", None):
        text += f" (body: {response.text[:500]!r})"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="MCP endpoint (…/mcp or …/sse)")
    parser.add_argument("--transport", required=True, choices=["streamable", "sse"])
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds for everything")
    parser.add_argument(
        "--bearer",
        metavar="TOKEN",
        help="send `Authorization: Bearer TOKEN` (a client credential the proxy must not forward)",
    )
    parser.add_argument("--denied", metavar="TOOL", help="a tool the proxy's policy must deny")
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.bearer}"} if args.bearer else {}

    async def bounded() -> dict[str, Any]:
        with anyio.fail_after(args.timeout):
            return await check(args.url, args.transport, headers, args.denied)

    try:
        result = anyio.run(bounded)
    except TimeoutError:
        print(f"mcp_client_check: no complete exchange within {args.timeout}s", file=sys.stderr)
        return 1
    except BaseException as exc:  # noqa: BLE001 - report whatever the SDK raised, then fail
        if isinstance(exc, KeyboardInterrupt):
            raise
        print(f"mcp_client_check: {args.transport} {args.url}: {describe(exc)}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
