"""The decision service's OpenAPI 3.1 document, built when asked for.

Nothing in it is written twice: the decision is the shipped JSON Schema of
the data contract (docs/decision.schema.json, OpenAPI 3.1 being JSON Schema
2020-12), and each account schema is generated from the served policy's own
field declarations, so a client generated from `/openapi.json` sends what
the policy reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import __version__
from . import nodes as n
from .compiler import Policy

if TYPE_CHECKING:
    from .service import ServiceConfig

_TEXT_OR = {"type": "string"}
_FIELD_TYPES: dict[str, dict[str, Any]] = {
    "int": {"anyOf": [{"type": "integer"}, _TEXT_OR]},
    "number": {"anyOf": [{"type": "number"}, _TEXT_OR], "description": "exact decimal; text keeps every digit"},
    "money": {"anyOf": [{"type": "number"}, _TEXT_OR], "description": "exact decimal, never rounded to binary"},
    "bool": {"anyOf": [{"type": "boolean"}, _TEXT_OR]},
    "text": {"type": "string"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time", "description": "with an offset"},
    "zone": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
             "description": "IANA zone names, one or several (`A;B` or an array)"},
}


def field_schema(declared: n.Field) -> dict[str, Any]:
    """The JSON Schema of one account field, as the policy declares it."""
    kind = declared.type
    if kind.kind == "set":
        item = {"type": "integer"} if kind.element == "int" else {"type": "string"}
        schema: dict[str, Any] = {"anyOf": [{"type": "array", "items": item}, _TEXT_OR],
                                  "description": "an array, or ;-separated text"}
    elif kind.kind == "enum":
        schema = {"enum": list(kind.members)}
    else:
        schema = dict(_FIELD_TYPES[kind.kind])
    return schema


def account_schema(policy: Policy) -> dict[str, Any]:
    fields = policy.model.fields
    return {
        "type": "object", "additionalProperties": False,
        "description": f"An account as policy {policy.name!r} {policy.version} reads it; "
                       "a key that is no field is refused.",
        "properties": {name: field_schema(declared) for name, declared in fields.items()},
        "required": [name for name, declared in fields.items() if declared.default is None],
    }


def _schema_name(policy: Policy) -> str:
    return "Account_" + "".join(part if part.isalnum() else "_" for part in policy.name)


_CONTACT = {
    "type": "object", "additionalProperties": False, "required": ["action", "at"],
    "properties": {"account_id": {"type": "string", "description": "the request's account when left out"},
                   "action": {"type": "string"}, "at": {"type": "string", "format": "date-time"},
                   "outcome": {"type": "string", "default": ""}},
}
_PROBLEM = {
    "type": "object", "required": ["type", "title", "status", "detail"],
    "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                   "detail": {"type": "string"},
                   "field": {"type": "string", "description": "the request field at fault, e.g. history[2].action"}},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False, "required": required,
        "properties": {**properties, "policy": {"type": "string",
                                                "description": "the served policy's name; required when several"}},
    }}}}


def _answer(schema: dict[str, Any], description: str, status: str = "200") -> dict[str, Any]:
    problems = {code: {"description": text, "content": {"application/problem+json": {"schema": _ref("Problem")}}}
                for code, text in (("400", "malformed JSON"), ("401", "missing or wrong bearer token"),
                                   ("413", "body over the size limit"), ("415", "not JSON"),
                                   ("422", "a field is wrong; `field` names it"),
                                   ("503", "the ledger or the decision log is unavailable, or the request timed out"))}
    return {status: {"description": description, "content": {"application/json": {"schema": schema}}}, **problems}


def document(decision: dict[str, Any], policies: Sequence[Policy], config: ServiceConfig) -> dict[str, Any]:
    decided_schema = {key: value for key, value in decision.items() if key not in ("$schema", "$id")}
    decided_schema["properties"] = {**decided_schema["properties"], "decision_id": {
        "type": "string", "description": "names this decision in the decision log"}}
    decided_schema["required"] = [*decided_schema["required"], "decision_id"]
    accounts = [_ref(_schema_name(policy)) for policy in policies]
    account = accounts[0] if len(accounts) == 1 else {"oneOf": accounts}
    decided = _ref("Decision")
    now = {"type": "string", "format": "date-time", "description": "the instant to decide at; the server's clock "
                                                                   "when left out"}
    history = {"type": "array", "items": _ref("Contact"), "maxItems": config.max_items}
    post = {
        "/v1/decide": ("Decide for one account", _body({"account": account, "history": history, "now": now},
                                                       ["account"]), _answer(decided, "the decision")),
        "/v1/decide/batch": ("Decide for several accounts, in order", _body(
            {"accounts": {"type": "array", "items": account, "maxItems": config.max_items},
             "history": history, "now": now}, ["accounts"]),
            _answer({"type": "object", "properties": {"decisions": {"type": "array", "items": decided}}},
                    "one decision per account, in order; an account that cannot be evaluated has `error` set")),
        "/v1/explain": ("Explain a decision", _body({"account": account, "history": history, "now": now},
                                                    ["account"]),
                        _answer({"type": "object", "properties": {"decision": decided, "explanation": {
                            "type": "object"}}}, "the decision and, per action, the rules that decided it")),
        "/v1/contacts": ("Record contacts in the ledger", _body({"contacts": history}, ["contacts"]),
                         _answer({"type": "object", "properties": {"ids": {"type": "array", "items": {
                             "type": "string"}}}}, "the ledger ids of the contacts", "201")),
        "/v1/reserve": ("Check and record a contact in one transaction", _body(
            {"account": account, "action": {"type": "string"}, "history": history, "now": now},
            ["account", "action"]), _answer({"type": "object", "required": ["granted", "decision", "reservation_id"],
                                             "properties": {"granted": {"type": "boolean"}, "decision": decided,
                                                            "reservation_id": {"type": ["string", "null"]},
                                                            "replayed": {"type": "boolean"}}},
                                            "whether the contact was reserved")),
        "/v1/contacts/{reservation_id}/outcome": ("Complete a reservation with its outcome", _body(
            {"outcome": {"type": "string"}, "at": {"type": "string", "format": "date-time"}}, ["outcome"]),
            _answer({"type": "object", "properties": {"reservation_id": {"type": "string"},
                                                      "contact": _ref("Contact")}}, "the completed contact")),
    }
    paths: dict[str, Any] = {}
    for path, (summary, body, responses) in post.items():
        operation: dict[str, Any] = {"summary": summary, "requestBody": body, "responses": responses}
        if path in ("/v1/contacts", "/v1/reserve"):
            operation["parameters"] = [{"name": "Idempotency-Key", "in": "header", "required": False,
                                        "schema": {"type": "string", "maxLength": 200},
                                        "description": "a retry with the same key and body gets the first answer"}]
        if "{reservation_id}" in path:
            operation["parameters"] = [{"name": "reservation_id", "in": "path", "required": True,
                                        "schema": {"type": "string"}}]
        paths[path] = {"post": operation}
    for path, summary in (("/health", "200 once a policy is loaded"),
                          ("/health/ready", "200 when the ledger and decision log answer, else 503"),
                          ("/v1/status", "the served policies: name, version, digest, reloads, last error"),
                          ("/metrics", "Prometheus metrics"), ("/openapi.json", "this document")):
        paths[path] = {"get": {"summary": summary, "responses": {"200": {"description": summary}}}}
    components: dict[str, Any] = {"Decision": decided_schema, "Contact": _CONTACT, "Problem": _PROBLEM,
                                  **{_schema_name(policy): account_schema(policy) for policy in policies}}
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "policydsl decision service", "version": __version__,
                 "description": "Served: " + ", ".join(f"{p.name} {p.version} ({p.digest})" for p in policies)},
        "paths": paths, "components": {"schemas": components},
    }
    if config.token:
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        spec["security"] = [{"bearer": []}]
    return spec
