"""The acceptance endpoints: a site records which version a user accepted and asks who must accept again (API key per site)."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from addendum.operations import acceptances as api
from addendum.operations.subscriptions import Subscriptions
from addendum.web.pages import COMMON_HEADERS, TooLarge


def _subscriptions(request: Request) -> Subscriptions:
    subscriptions: Subscriptions = request.app.state.subscriptions
    return subscriptions


def _answer(data: Any, status: int = 200) -> Response:
    """Personal data: never cached, never offered to another origin."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return Response(body, status_code=status, media_type="application/json",
                    headers={**COMMON_HEADERS, "Cache-Control": "no-store"})


async def _body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > api.BODY_LIMIT:
            raise TooLarge(f"the body is larger than {api.BODY_LIMIT} bytes", "send one acceptance per request")
    return bytes(body)


async def record(request: Request) -> Response:
    body = await _body(request)
    answer = await run_in_threadpool(api.record_from_api, _subscriptions(request), request.headers.get("authorization", ""), body)
    return _answer(answer, 201)


async def user_records(request: Request) -> Response:
    query = request.query_params
    answer = await run_in_threadpool(api.acceptances_of, _subscriptions(request), request.headers.get("authorization", ""),
                                     request.path_params["user"], query.get("policy"), query.get("site"))
    return _answer(answer)


async def needs(request: Request) -> Response:
    query = request.query_params
    answer = await run_in_threadpool(api.needs_of, _subscriptions(request), request.headers.get("authorization", ""),
                                     request.path_params["user"], query.get("policy"), query.get("site"), query.get("lang"),
                                     query.get("upcoming"), query.get("date"))
    return _answer(answer)


def routes() -> list[BaseRoute]:
    return [
        Route("/api/acceptances", record, methods=["POST"]),
        Route("/api/acceptances/{user}", user_records, methods=["GET"]),
        Route("/api/needs-acceptance/{user}", needs, methods=["GET"]),
    ]
