"""Schemathesis auth hooks for scripts/schemathesis.sh: one provider per security scheme
of the document, chosen by path, with credentials from the environment the script sets up.

- admin routes (/api/v1/admin/...): the admin token (adminToken);
- portal routes (/v1/partner/keys..., /v1/partner/auth/me): a portal access token,
  obtained by signing in (portalToken) and renewed well inside its 15 minutes;
- widget routes (config, organizations, donations): the publishable key alone (widgetKey);
- every other partner route: Basic pk:sk (basicAuth, accepted on sandbox, contract section 3).

Public routes (health, the document, sign-in) get no credentials. The provider callback is
signed with a provider secret the run does not configure, so it is fuzzed unauthenticated.
Secrets are read from the environment and never printed.
"""

import base64
import datetime
import json
import os

import requests
import schemathesis

BASE_URL = os.environ["ST_BASE_URL"]
# Portal access tokens live 15 minutes (server.access_token_ttl_secs); renew at 10.
PORTAL_TOKEN_REFRESH_SECS = 600
# Signing in costs an Argon2 hash (slow in a debug build).
LOGIN_TIMEOUT_SECS = 30


def _header(case, name, value):
    case.headers = case.headers or {}
    case.headers[name] = value


@schemathesis.auth(refresh_interval=None).apply_to(path_regex=r"^/api/v1/admin/")
class AdminToken:
    def get(self, case, context):
        return os.environ["ST_ADMIN_TOKEN"]

    def set(self, case, data, context):
        _header(case, "Authorization", f"Bearer {data}")


@schemathesis.auth(refresh_interval=PORTAL_TOKEN_REFRESH_SECS).apply_to(path_regex=r"^/v1/partner/(keys|auth/me)")
class PortalToken:
    def get(self, case, context):
        response = requests.post(
            f"{BASE_URL}/v1/partner/auth/login",
            json={"email": os.environ["ST_PORTAL_EMAIL"], "password": os.environ["ST_PORTAL_PASSWORD"]},
            timeout=LOGIN_TIMEOUT_SECS,
        )
        response.raise_for_status()
        return response.json()["accessToken"]

    def set(self, case, data, context):
        _header(case, "Authorization", f"Bearer {data}")


@schemathesis.auth(refresh_interval=None).apply_to(path_regex=r"^/v1/partner/(config|organizations/|donations/)")
class WidgetKey:
    def get(self, case, context):
        return os.environ["ST_PUBLIC_KEY"]

    def set(self, case, data, context):
        _header(case, "X-Partner-Key", data)


@schemathesis.auth(refresh_interval=None).apply_to(path_regex=r"^/v1/partner/").skip_for(
    path_regex=r"^/v1/partner/(keys|auth/|config|organizations/|donations/)"
)
class PartnerBasic:
    def get(self, case, context):
        pair = f"{os.environ['ST_PUBLIC_KEY']}:{os.environ['ST_SECRET_KEY']}"
        return base64.b64encode(pair.encode()).decode()

    def set(self, case, data, context):
        _header(case, "Authorization", f"Basic {data}")


# ---- rules the OpenAPI document cannot express ----
#
# `before_call` runs in every phase (coverage, fuzzing, stateful). It changes only cases
# generated as valid (positive mode), so that a schema-valid request also satisfies the
# few server rules JSON Schema cannot state; negative cases are sent as generated. Each
# rule is listed, with its reason, in README ("Schemathesis in CI").

# A delivery target on this machine: the run allows 127.0.0.0/8 for webhooks
# (REWARD_WEBHOOK_ALLOWED_CIDRS) and nothing listens on the discard port, so deliveries
# fail fast and no traffic leaves the loopback interface.
LOOPBACK_WEBHOOK_URL = "http://127.0.0.1:9/schemathesis"
FUTURE_EXPIRY = "2099-01-01T00:00:00.000Z"


def _is_positive(case):
    meta = getattr(case, "_meta", None)
    return meta is not None and meta.generation.mode.is_positive


def _is_past(value):
    if not isinstance(value, str):
        return False
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return moment.tzinfo is not None and moment < datetime.datetime.now(datetime.timezone.utc)


@schemathesis.hook
def before_call(context, case, kwargs):
    if not _is_positive(case):
        return
    # `cursor` and `page` together are a 400 (contract section 1); OpenAPI cannot say
    # "at most one of two query parameters".
    if isinstance(case.query, dict) and "cursor" in case.query and "page" in case.query:
        case.query = {name: value for name, value in case.query.items() if name != "page"}
    # On the event feed `cursor` is another name for `after`: both together are a 400.
    if isinstance(case.query, dict) and "cursor" in case.query and "after" in case.query:
        case.query = {name: value for name, value in case.query.items() if name != "cursor"}
    if not isinstance(case.body, dict):
        return
    # An expiry must lie in the future; the schema can only say "a date-time".
    if _is_past(case.body.get("expiresAt")):
        case.body = {**case.body, "expiresAt": FUTURE_EXPIRY}
    # A webhook endpoint (see _valid_endpoint).
    if case.operation.path.startswith("/v1/partner/webhooks"):
        case.body = _valid_endpoint(case.body)
    # An action's amount, currency and stakeholders (see _valid_action).
    if case.operation.path in ("/v1/partner/actions/submit", "/v1/partner/actions/quote"):
        case.body = _valid_action(case.body)
    if case.operation.path == "/v1/partner/actions/batch" and isinstance(case.body.get("actions"), list):
        case.body = {**case.body, "actions": [_valid_action(action) for action in case.body["actions"]]}


# The engine's own delivery headers, which an endpoint may not set (any case).
RESERVED_HEADERS = {
    "content-type", "content-length", "user-agent", "host", "connection", "transfer-encoding",
    "x-sir-timestamp", "x-sir-signature", "webhook-id", "webhook-timestamp", "webhook-signature",
}


def _valid_endpoint(body):
    """A webhook endpoint as the server reads it: a URL on loopback (this machine has no
    DNS, and deliveries must stay here), none of the engine's own headers, and on create
    at least one event type unless it receives all."""
    body = dict(body)
    if isinstance(body.get("url"), str):
        body["url"] = LOOPBACK_WEBHOOK_URL
    if isinstance(body.get("headers"), dict):
        body["headers"] = {name: value for name, value in body["headers"].items() if name.lower() not in RESERVED_HEADERS}
    if body.get("receiveAllEvents") is False and not body.get("eventTypes"):
        body["receiveAllEvents"] = True
    return body


# Stakeholder types the demo partner registers (src/demo.rs).
REGISTERED_STAKEHOLDER_TYPES = ("CUSTOMER", "NONPROFIT", "REFERRER")
# The contract's metadata bound (4 KiB of JSON text).
METADATA_BYTES_MAX = 4096
# Amounts stay below this many units, so the JSON text never takes an exponent.
AMOUNT_UNITS_MAX = 1_000_000_000


def _valid_action(action):
    """An action as the server reads it: an amount with the currency's decimals (USD: 2)
    and no exponent, amount and currency together, registered stakeholder types, each
    partnerUserId once, metadata within 4 KiB."""
    if not isinstance(action, dict):
        return action
    action = dict(action)
    amount = action.get("amount")
    if isinstance(amount, (int, float)) and not isinstance(amount, bool):
        action["amount"] = max(round(min(float(amount), AMOUNT_UNITS_MAX), 2), 0.01)
        action["currency"] = "USD"
    elif amount is None and action.get("currency") is not None:
        action["currency"] = None
    if isinstance(action.get("metadata"), dict) and len(json.dumps(action["metadata"])) > METADATA_BYTES_MAX:
        action["metadata"] = {}
    stakeholders = action.get("stakeholders")
    if isinstance(stakeholders, list):
        seen = set()
        fixed = []
        for index, stakeholder in enumerate(stakeholders):
            if isinstance(stakeholder, dict):
                stakeholder = dict(stakeholder)
                if isinstance(stakeholder.get("stakeholderTypeCode"), str) and stakeholder["stakeholderTypeCode"] not in REGISTERED_STAKEHOLDER_TYPES:
                    stakeholder["stakeholderTypeCode"] = REGISTERED_STAKEHOLDER_TYPES[0]
                user = stakeholder.get("partnerUserId")
                if isinstance(user, str) and user in seen:
                    stakeholder["partnerUserId"] = f"{user[:120]}.{index}"
                seen.add(stakeholder.get("partnerUserId"))
            fixed.append(stakeholder)
        action["stakeholders"] = fixed
    return action
