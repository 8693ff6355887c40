"""OpenAPI 3.1 document built from the app's routes and the handlers' pydantic models.

A handler declares its body and reply models with ``@documented``; routes without it
still appear (summary from the docstring), so the document never silently omits one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

H = TypeVar("H", bound=Callable[..., Any])

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}


def documented(
    *,
    summary: str,
    body: type[BaseModel] | None = None,
    reply: type[BaseModel] | None = None,
    status: int = 200,
    auth: bool = True,
    tag: str = "sanke",
    body_text: str | None = None,
    query: dict[str, str] | None = None,
) -> Callable[[H], H]:
    """``body_text``: the media type of a text body (``text/csv``); ``query``: the optional
    query parameters, name → description."""

    def mark(handler: H) -> H:
        handler.__openapi__ = {  # type: ignore[attr-defined]
            "summary": summary,
            "body": body,
            "reply": reply,
            "status": status,
            "auth": auth,
            "tag": tag,
            "body_text": body_text,
            "query": query or {},
        }
        return handler

    return mark


def build_openapi(
    app: web.Application, title: str = "Sanke API", version: str = "1"
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    models: set[type[BaseModel]] = set()
    for route in app.router.routes():
        method = route.method.lower()
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if not path or method in {"head", "*"} or path.startswith("/web"):
            continue
        handler = route.handler
        meta: dict[str, Any] = getattr(handler, "__openapi__", {}) or {}
        doc = (handler.__doc__ or "").strip().splitlines()
        op: dict[str, Any] = {
            "summary": meta.get("summary") or (doc[0] if doc else f"{method.upper()} {path}"),
            "operationId": f"{method}_{re.sub(r'[^a-zA-Z0-9]+', '_', path).strip('_')}",
            "tags": [
                meta.get(
                    "tag", path.strip("/").split("/")[2] if path.startswith("/api/") else "ops"
                )
            ],
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in re.findall(r"{(\w+)", path)
            ]
            + [
                {"name": name, "in": "query", "description": text, "schema": {"type": "string"}}
                for name, text in meta.get("query", {}).items()
            ],
            "responses": {
                "4XX": {
                    "description": "error",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
        }
        status = str(meta.get("status", 200))
        reply = meta.get("reply")
        op["responses"][status] = {"description": "success"}
        if reply is not None:
            models.add(reply)
            op["responses"][status]["content"] = {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{reply.__name__}"}}
            }
        body = meta.get("body")
        if body is not None:
            models.add(body)
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{body.__name__}"}
                    }
                },
            }
        if meta.get("body_text"):
            op["requestBody"] = {
                "required": True,
                "content": {meta["body_text"]: {"schema": {"type": "string"}}},
            }
        if meta.get("auth", path.startswith("/api/")):
            op["security"] = [{"bearer": []}]
        paths.setdefault(re.sub(r"{(\w+)(:[^}]*)?}", r"{\1}", path), {})[method] = op
    _, schemas = models_json_schema(
        [(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    components = dict(schemas.get("$defs", {}))
    components["Error"] = ERROR_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
