"""`govbus catalog|grant|user ...`: the control-plane API from the command line.

Talks to ``GOVBUS_API_URL`` with the token in ``GOVBUS_TOKEN`` (or ``--token``). Lists print
as tables for people, ``--json`` prints the API's JSON for scripts. An API refusal prints
its status and message and exits 1. A change the store took but Kafka has not yet (the
answer's ``publication`` is ``pending``) is said so on stderr: it reaches the bus when Kafka
is back, with nothing more to do.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.table import Table

from services.common.paths import OutsideDirectory, inside
from services.common.settings import load_settings


class ApiError(Exception):
    pass


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    settings = load_settings()
    token = args.token or (settings.token.get_secret_value() if settings.token else None)
    if not token:
        raise ApiError("no token: set GOVBUS_TOKEN or pass --token")
    try:
        r = httpx.request(
            method,
            f"{settings.api_url.rstrip('/')}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        raise ApiError(f"cannot reach {settings.api_url}: {exc}") from exc
    if r.status_code == 204:
        return None
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        raise ApiError(f"{r.status_code}: {detail}")
    return r.json()


PENDING_NOTICE = "stored; waiting for Kafka to publish it"


def _change(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    """A call that changes something; says so when its publication to the bus is pending."""
    answer = _call(args, method, path, body)
    if isinstance(answer, dict) and answer.get("publication") == "pending":
        print(PENDING_NOTICE, file=sys.stderr)
    return answer


def _print(args: argparse.Namespace, data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _grant_table(cases: list[dict[str, Any]]) -> None:
    t = Table()
    for col in ("grant", "consumer", "resource", "state", "waiting since", "due", "valid until"):
        t.add_column(col)
    for c in cases:
        g = c["grant"]
        due = c.get("step_due") or ""
        t.add_row(
            g["id"],
            g["consumer"],
            g["resource"],
            g["state"],
            c["updated_at"][:10],
            due,
            g["valid_until"],
        )
    Console(width=140).print(t)


def parse_mask(text: str) -> tuple[str, dict[str, Any]]:
    """``field=method[:param=value,...]``, e.g. ``name=partial:style=name``."""
    field, _, spec = text.partition("=")
    method, _, params = spec.partition(":")
    if not field or not method:
        raise argparse.ArgumentTypeError(f"--mask {text!r}: expected field=method[:k=v,...]")
    out: dict[str, Any] = {"method": method}
    for pair in filter(None, params.split(",")):
        key, _, value = pair.partition("=")
        out[key] = int(value) if value.isdigit() else value
    return field, out


def _request_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if args.file:
        body = yaml.safe_load(Path(args.file).read_text(encoding="utf-8")) or {}
    given = {
        "resource": args.resource,
        "purpose": args.purpose,
        "legal_basis": args.legal_basis,
        "fields": args.fields.split(",") if args.fields else None,
        "row_filter": args.filter,
        "l4_clear_reason": args.l4_clear_reason,
        "valid_from": args.valid_from,
        "valid_until": args.valid_until,
        "amends": args.amends,
    }
    body.update({k: v for k, v in given.items() if v is not None})
    if args.mask:
        body["masking"] = {**body.get("masking", {}), **dict(args.mask)}
    body.setdefault("valid_from", str(dt.date.today()))
    return body


# -- commands ---------------------------------------------------------------------------------
def _whoami(args):
    _print(args, _call(args, "GET", "/whoami"))


def _user_add(args):
    body = {"name": args.name, "department": args.department, "role": args.role}
    body["representative"] = args.representative
    made = _call(args, "POST", "/users", body)
    print(made["token"] if not args.json else json.dumps(made))


def _user_rotate_token(args):
    made = _call(args, "POST", f"/users/{args.name}/token")
    print(made["token"] if not args.json else json.dumps(made))
    if not args.json:
        print(f"valid until {made['expires_at']}; the old token no longer works", file=sys.stderr)


def _user_remove(args):
    _call(args, "DELETE", f"/users/{args.name}")
    print(f"{args.name} removed; its token no longer works")


def _user_appoint(args):
    body = {"representative": not args.dismiss}
    _print(args, _call(args, "PUT", f"/users/{args.name}/representative", body))


def _user_list(args):
    _print(args, _call(args, "GET", "/users"))


def _catalog_list(args):
    found = _call(args, "GET", "/resources")
    if args.json:
        return _print(args, found)
    t = Table()
    for col in ("resource", "name", "provider", "category", "share type", "frequency", "fields"):
        t.add_column(col)
    for r in found:
        e = r["entry"]
        t.add_row(
            f"{e['provider']}.{e['code']}",
            e["name_zh"],
            e["provider"],
            e["category"],
            e["share_type"],
            e["update_frequency"],
            str(len(e["fields"])),
        )
    Console(width=140).print(t)


def _catalog_show(args):
    _print(args, _call(args, "GET", f"/resources/{args.resource}"))


def _catalog_put(args):
    body = json.loads(Path(args.file).read_text(encoding="utf-8"))
    _print(args, _change(args, "PUT", f"/resources/{args.resource}", body))


def write_export(root: Path, files: dict[str, str]) -> None:
    """Write the exported files under ``root``; none may land outside it (checked first)."""
    try:
        paths = {inside(root, rel): text for rel, text in files.items()}
    except OutsideDirectory as exc:
        raise ApiError(f"export refused, nothing written: {exc}") from exc
    for path, text in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _catalog_export(args):
    files = _call(args, "GET", "/catalog/export")["files"]
    write_export(Path(args.dir), files)
    print(f"wrote {len(files)} files under {args.dir}")


def read_import(root: Path) -> dict[str, str]:
    """The files an import sends, keyed by path under ``root``; none read from outside it."""
    rels = [
        f"{sub}/{p.name}"
        for sub, pattern in (("catalog", "*.yaml"), ("grants", "*.yaml"), ("schemas", "*.avsc"))
        for p in sorted((root / sub).glob(pattern))
    ]
    try:
        return {rel: inside(root, rel).read_text(encoding="utf-8") for rel in rels}
    except OutsideDirectory as exc:
        raise ApiError(f"import refused: {exc}") from exc


def _catalog_import(args):
    root = Path(args.dir)
    files = read_import(root)
    if not any(k.startswith("catalog/") for k in files):
        raise ApiError(f"{root}/catalog has no *.yaml files")
    _print(args, _change(args, "POST", "/catalog/import", {"files": files}))


def _grant_request(args):
    case = _change(args, "POST", "/grants", _request_body(args))
    if args.json:
        return _print(args, case)
    print(f"{case['grant']['id']} {case['grant']['state']} (next step due {case['step_due']})")


def _grant_preview(args):
    samples = json.loads(Path(args.samples).read_text(encoding="utf-8"))
    if args.grant:
        shown = _call(args, "POST", f"/grants/{args.grant}/preview", {"samples": samples})
    else:
        shown = _call(
            args, "POST", "/grants/preview", {"request": _request_body(args), "samples": samples}
        )
    _print(args, shown)


def _grant_list(args):
    query = {k: getattr(args, k) for k in ("state", "resource", "consumer") if getattr(args, k)}
    path = "/grants" + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    cases = _call(args, "GET", path)
    _print(args, cases) if args.json else _grant_table(cases)


def _grant_overdue(args):
    cases = _call(args, "GET", "/grants/overdue")
    _print(args, cases) if args.json else _grant_table(cases)


def _grant_show(args):
    case = _call(args, "GET", f"/grants/{args.grant}")
    if args.history:
        case = {**case, "history": _call(args, "GET", f"/grants/{args.grant}/history")}
    _print(args, case)


def _grant_step(action: str):
    def step(args):
        body = {"reason": getattr(args, "reason", None)}
        case = _change(args, "POST", f"/grants/{args.grant}/{action}", body)
        if args.json:
            return _print(args, case)
        print(f"{case['grant']['id']} {case['grant']['state']}")

    return step


def _request_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--file", help="YAML with the request (options below override it)")
    p.add_argument("--resource", help="<provider>.<code>")
    p.add_argument("--fields", help="comma-separated field names")
    p.add_argument("--purpose")
    p.add_argument("--legal-basis")
    p.add_argument("--filter", help="row filter, e.g. \"region_code startswith '3401'\"")
    p.add_argument("--mask", action="append", type=parse_mask, help="field=method[:k=v,...]")
    p.add_argument("--l4-clear-reason")
    p.add_argument("--from", dest="valid_from", help="YYYY-MM-DD (default today)")
    p.add_argument("--until", dest="valid_until", help="YYYY-MM-DD")
    p.add_argument("--amends", help="id of the grant this one replaces")


def add_commands(sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--token", help="API token (default: GOVBUS_TOKEN)")
    common.add_argument("--json", action="store_true", help="print the API's JSON")

    def command(parent, name, func, text):
        p = parent.add_parser(name, help=text, parents=[common])
        p.set_defaults(func=_guarded(func))
        return p

    command(sub, "whoami", _whoami, "the user the token belongs to")
    user = sub.add_parser(
        "user", help="users and their tokens (authority; its department's: a representative)"
    ).add_subparsers(dest="user_command", required=True)
    p = command(user, "add", _user_add, "create a user (or re-issue its token); prints the token")
    p.add_argument("name")
    p.add_argument("--department", required=True)
    p.add_argument("--role", required=True, choices=["provider", "consumer", "authority", "ops"])
    p.add_argument("--representative", action="store_true", help="its department's 首席代表")
    p = command(user, "appoint", _user_appoint, "make a user its department's representative")
    p.add_argument("name")
    p.add_argument("--dismiss", action="store_true", help="no longer the representative")
    command(
        user,
        "rotate-token",
        _user_rotate_token,
        "issue a new token (your own; others: authority, representative)",
    ).add_argument("name")
    command(user, "list", _user_list, "every user")
    command(user, "remove", _user_remove, "delete a user and its token").add_argument("name")

    cat = sub.add_parser("catalog", help="the data resource catalog").add_subparsers(
        dest="catalog_command", required=True
    )
    command(cat, "list", _catalog_list, "every resource")
    command(cat, "show", _catalog_show, "one resource with its schema").add_argument("resource")
    p = command(cat, "put", _catalog_put, "create or change a resource from a JSON file")
    p.add_argument("resource")
    p.add_argument("--file", required=True, help='{"entry": {...}, "value_schema": {...}}')
    command(
        cat, "export", _catalog_export, "write catalog/, grants/, schemas/ under DIR"
    ).add_argument("dir")
    command(
        cat, "import", _catalog_import, "read DIR/catalog, DIR/grants, DIR/schemas"
    ).add_argument("dir")

    grant = sub.add_parser("grant", help="requests and grants").add_subparsers(
        dest="grant_command", required=True
    )
    _request_options(command(grant, "request", _grant_request, "file a request (consumer)"))
    p = command(grant, "preview", _grant_preview, "what a request or grant delivers on samples")
    _request_options(p)
    p.add_argument("--grant", help="preview an existing grant instead of a request")
    p.add_argument("--samples", required=True, help="JSON file: a list of records")
    p = command(grant, "list", _grant_list, "grants you may see")
    for opt in ("--state", "--resource", "--consumer"):
        p.add_argument(opt)
    command(grant, "overdue", _grant_overdue, "open steps past their due date")
    p = command(grant, "show", _grant_show, "one grant")
    p.add_argument("grant")
    p.add_argument("--history", action="store_true", help="with every change (who, when)")
    for action, text in (("approve", "provider"), ("activate", "authority")):
        command(grant, action, _grant_step(action), f"{action} ({text})").add_argument("grant")
    for action, text in (("reject", "provider or authority"), ("revoke", "authority or provider")):
        p = command(grant, action, _grant_step(action), f"{action} ({text})")
        p.add_argument("grant")
        p.add_argument("--reason", required=True)


def _guarded(func):
    def run(args: argparse.Namespace) -> int:
        try:
            func(args)
        except ApiError as exc:
            print(f"govbus: {exc}", file=sys.stderr)
            return 1
        return 0

    return run


def authority_only(what: str, func):
    """Run ``func(args)`` only for the authority: the API says whose ``--token``/GOVBUS_TOKEN
    it is. Commands that read the bus's own topics (dead letters, audit) use it."""

    def run(args: argparse.Namespace) -> int:
        try:
            me = _call(args, "GET", "/whoami")
            if me.get("role") != "authority":
                raise ApiError(f"403: {what} is for the authority; {me['user']} is {me['role']}")
        except ApiError as exc:
            print(f"govbus: {exc}", file=sys.stderr)
            return 1
        return func(args) or 0

    return run
