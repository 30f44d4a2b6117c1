"""What the acceptance endpoints and commands answer: a site's key checked, records stored and read, who must accept again."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from addendum.errors import FieldError, UsageError
from addendum.ids import LANGUAGE_PATTERN, is_id, parse_date
from addendum.notify.acceptances import (
    ApiKey,
    Ledgers,
    Need,
    Standing,
    WrongSite,
    add_key,
    clean_user_ref,
    key_site,
    needs_acceptance,
    record_acceptance,
    user_acceptances,
    validate_acceptance,
)
from addendum.notify.state import State
from addendum.notify.subscribers import repository_targets
from addendum.operations.public import API_FORMAT
from addendum.operations.subscriptions import Subscriptions

BODY_LIMIT = 16 * 1024  # one acceptance is a few hundred bytes
FIELDS = ("user", "policy", "version", "site", "language", "accepted_at", "method", "content_hash", "ip")


def bearer_key(authorization: str) -> str:
    scheme, _, value = authorization.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def authorised(subscriptions: Subscriptions, authorization: str, site_id: str | None) -> tuple[State, str, str]:
    """(the state, the site asked about, the key id) for a request whose key belongs to that site (default: the key's)."""
    state = subscriptions.state()
    key_site_id, key_id = key_site(state, bearer_key(authorization))
    if site_id and site_id != key_site_id:
        raise WrongSite(f"this API key is for site {key_site_id!r}, not {site_id!r}", "use the key of that site")
    return state, key_site_id, key_id


def parse_body(body: bytes) -> dict[str, Any]:
    """A JSON object of known fields; FieldError("body") for anything else."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise FieldError("body", "the body is not JSON", 'send a JSON object, e.g. {"user": "u-1", …}') from None
    if not isinstance(data, dict):
        raise FieldError("body", "the body must be a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise FieldError(unknown[0], f"unknown field {unknown[0]!r}", f"the fields: {', '.join(FIELDS)}")
    return data


def record_from_api(subscriptions: Subscriptions, authorization: str, body: bytes) -> dict[str, Any]:
    """`POST /api/acceptances`: store one acceptance for the key's site."""
    state, site_id, key_id = authorised(subscriptions, authorization, None)  # nothing is read for a caller without a key
    data = parse_body(body)
    if isinstance(data.get("site"), str) and data["site"] and data["site"] != site_id:
        raise WrongSite(f"this API key is for site {site_id!r}, not {data['site']!r}", "use the key of that site")
    entry = validate_acceptance(state, Ledgers(state), data, default_site=site_id)
    return {"format": API_FORMAT, "acceptance": record_acceptance(state, entry, f"api:{key_id}").as_json()}


def _policy(value: str | None, required: bool) -> str | None:
    if not value:
        if required:
            raise FieldError("policy", "the policy is missing", "add ?policy=ID, e.g. ?policy=privacy")
        return None
    if not is_id(value):
        raise FieldError("policy", f"policy {value!r} is not a valid id")
    return value


def acceptances_of(subscriptions: Subscriptions, authorization: str, user: str, policy_id: str | None,
                   site_id: str | None) -> dict[str, Any]:
    """`GET /api/acceptances/{user}`: one user's records on the key's site, newest first."""
    state, site, _ = authorised(subscriptions, authorization, site_id)
    user_ref = clean_user_ref(user)
    records = user_acceptances(state, user_ref, site, _policy(policy_id, False))
    return {"format": API_FORMAT, "user": user_ref, "site": site, "policy": policy_id or None,
            "acceptances": [record.as_json() for record in records]}


def need_json(user_ref: str, policy_id: str, site_id: str, language: str, at: date, need: Need,
              standing: Standing | None) -> dict[str, Any]:
    target = need.target
    return {"format": API_FORMAT, "user": user_ref, "policy": policy_id, "site": site_id, "language": language,
            "date": at.isoformat(), "needs_acceptance": need.needed,
            "version": {"id": target.id, "effective": target.effective.isoformat(), "classification": target.classification,
                        "content_hash": target.hash_for(site_id, language),
                        "summary": target.summaries.get(language) or next(iter(target.summaries.values()), "")},
            "accepted": None if standing is None else {"version": standing.version_id, "language": standing.language,
                                                       "accepted_at": standing.accepted_at.isoformat().replace("+00:00", "Z")},
            "changes": [change.as_json() for change in need.changes]}


def needs_of(subscriptions: Subscriptions, authorization: str, user: str, policy_id: str | None, site_id: str | None,
             language: str | None, upcoming: str | None, day: str | None) -> dict[str, Any]:
    """`GET /api/needs-acceptance/{user}`: whether the user must accept the policy (again), and which versions why."""
    state, site, _ = authorised(subscriptions, authorization, site_id)
    policy = _policy(policy_id, True)
    assert policy is not None
    if language and not LANGUAGE_PATTERN.fullmatch(language):
        raise FieldError("lang", f"{language!r} is not a language code", "language codes look like en, nl or pt-BR")
    if upcoming not in (None, "", "0", "1", "true", "false"):
        raise FieldError("upcoming", f"upcoming must be 1 or 0, not {upcoming!r}")
    try:
        at = parse_date(day) if day else date.today()
    except UsageError as exc:
        raise FieldError("date", exc.message, exc.hint) from None
    user_ref = clean_user_ref(user)
    need, standing, chosen = needs_acceptance(state, user_ref, policy, site, language or None, at, upcoming in ("1", "true"))
    return need_json(user_ref, policy, site, chosen, at, need, standing)


def new_site_key(state: State, site_id: str) -> tuple[ApiKey, str]:
    """A new API key for a site that one of the repository's policies names."""
    sites = sorted({site for policy_sites in repository_targets(state.repo).sites.values() for site in policy_sites})
    if site_id not in sites:
        raise UsageError(f"no site {site_id!r} in the repository's policies", f"known sites: {', '.join(sites)}")
    return add_key(state, site_id)
