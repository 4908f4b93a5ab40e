"""What every surface of the reference gateway shares: state, auth, JSON parsing, errors, text."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from conformance.catalog import Model, load_catalog
from conformance.gateway.mutators import mutate

WORDS = (
    "a mixture of experts model routes each token to a few specialised expert networks so the model "
    "grows in capacity without growing the compute spent on every token databricks is a data and ai "
    "platform that unifies analytics governance and machine learning on a lakehouse the sky looks blue "
    "because air scatters short wavelengths of sunlight far more than long ones"
).split()
OTHER_WORDS = (
    "here is another answer entirely with different words lengths and punctuation so that no check may "
    "depend on the text a conformant gateway returns only on its shape"
).split()


class ApiError(Exception):
    """Raised inside a handler; turned into the surface's error form by the app. `too_large`: the request was
    refused for its size (the status-413-422 variation answers it 413)."""

    def __init__(self, status: int, code: str, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.too_large = status, code, message, too_large


@dataclass
class GatewayState:
    """The gateway's token and switches. Every switch is read through on(): in self-test mode (the suite's own
    self-tests start it so, never a run against it) the gateway notes each switch it consulted, so the self-test
    harness knows which answers a switch can change (conformance/gateway/selftest.py)."""

    token: str
    switches: frozenset[str] = field(default_factory=frozenset)
    self_test: bool = False
    consulted: set[str] = field(default_factory=set)
    stream_delay_s: float = 0.0  # seconds per token between stream events (`serve --stream-delay`); 0: at once
    # what this gateway offers, for self-tests of the preflight (a workspace rarely serves every catalog model):
    # catalog models it does not serve (404 as unknown ones, absent from the listing), and whether it has the
    # serving-endpoints listing at all (conformance/gateway/endpoints.py)
    not_serving: frozenset[str] = field(default_factory=frozenset)
    listing: bool = True
    warehouse: Any = field(default=None, repr=False, compare=False)  # SQL warehouse and usage table (sql.py)

    def on(self, name: str) -> bool:
        if self.self_test:
            self.consulted.add(name)
        return name in self.switches


def state_of(request: Request) -> GatewayState:
    return request.app.state.gateway


def authenticate(request: Request) -> None:
    """Bearer <token>, or Basic with user `token` and the token as password (spec README: Auth). The switches that
    change a refusal are asked only when a request is refused (GatewayState.on: asked where it changes the answer)."""
    state = state_of(request)
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() == "bearer" and credential == state.token:
        return
    if scheme.lower() == "basic" and _basic_matches(credential, state.token) and not state.on("basic-auth-refused"):
        return
    if state.on("auth-not-enforced"):
        return
    refused = 403 if state.on("auth-403") else 401  # the variation: 403 Forbidden, as many gateways answer
    code = "PERMISSION_DENIED" if refused == 403 else "UNAUTHENTICATED"
    if not header:
        raise ApiError(refused, code, "Credential was not sent or was of an unsupported type.")
    raise ApiError(refused, code, "Invalid access token.")


def _basic_matches(credential: str, token: str) -> bool:
    try:
        user, _, password = base64.b64decode(credential, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return user == "token" and password == token


REQUEST_TAGS_HEADER = "databricks-ai-gateway-request-tags"
CHAT_ROUTE = "/ai-gateway/mlflow/v1/chat/completions"


def validate_request_tags(request: Request) -> None:
    """003 Tag requests: "The header value must be a JSON object mapping string keys to string values."

    Shared by every surface that accepts tags; the tags-not-validated switch turns the check off.
    """
    raw = request.headers.get(REQUEST_TAGS_HEADER)
    if raw is None or state_of(request).on("tags-not-validated"):
        return
    try:
        tags = json.loads(raw)
    except ValueError:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "Request tags header is not valid JSON.") from None
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "Request tags must be a JSON object of string to string.")
    # tags-refused-beyond-chat: a gateway that knows the header on chat completions only, where the examples send it
    if request.url.path != CHAT_ROUTE and state_of(request).on("tags-refused-beyond-chat"):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Unknown header {REQUEST_TAGS_HEADER} on this route.")


async def read_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        if state_of(request).on("malformed-json-500"):
            raise ApiError(500, "INTERNAL_ERROR", "Internal error.") from None
        raise ApiError(400, "MALFORMED_REQUEST", "Request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "Request body must be a JSON object.")
    return body


def resolve_model(request: Request, name: Any, capability: str) -> tuple[Model, str]:
    """A catalog model by either documented name form; the name is echoed back as the client sent it."""
    if not isinstance(name, str) or not name:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "'model' must be a non-empty string.")
    model = load_catalog().get(name)
    if model is not None and model.name in state_of(request).not_serving:
        model = None
    if model is None or not (name.startswith("system.ai.") or name.startswith("databricks-")):
        if state_of(request).on("unknown-model-accepted"):
            model = load_catalog().get("claude-sonnet-4-5")
            assert model is not None
            return model, name
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Model service {name!r} does not exist.")
    check_name_form(request, name)
    if not model.has(capability):
        if capability == "responses":  # the OpenAI Responses routes: another provider's model
            raise other_provider(request, f"Model {name!r} does not support {capability}.")
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Model {name!r} does not support {capability}.")
    return model, name


SERVING_RESPONSES = "/serving-endpoints/responses"
AI_QUERY_HEADER = "x-conformance-ai-query"  # marks the chat requests the warehouse's ai_query makes (sql.py)


def check_name_form(request: Request, name: str) -> None:
    """Both documented name forms are served on every route. The switches are asked only where they decide:
    endpoint-names-refused (databricks-<name> refused, a gateway that knows model-service names only) for an
    endpoint name; the name-forms-strict variation (each route serves the form the spec shows for it only:
    databricks-<name> on /serving-endpoints/responses, system.ai.<name> elsewhere) for a request on that route or
    with an endpoint name."""
    if request.headers.get(AI_QUERY_HEADER):
        return  # the SQL warehouse's ai_query (gateway/sql.py) names the endpoint as 003 shows: not an HTTP route's
    state = state_of(request)
    endpoint = name.startswith("databricks-")
    if endpoint and state.on("endpoint-names-refused"):
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Model service {name!r} does not exist.")
    serving = request.url.path == SERVING_RESPONSES
    if (serving or endpoint) and state.on("name-forms-strict") and serving != endpoint:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"No model {name!r} on {request.url.path}.")


def other_provider(request: Request, message: str) -> ApiError:
    """A native route's refusal of another provider's model: 400, or 404 with the other-provider-404 variation
    (a gateway that answers "not found here": the spec names no status)."""
    if state_of(request).on("other-provider-404"):
        return ApiError(404, "RESOURCE_DOES_NOT_EXIST", message)
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def echo(request: Request) -> dict[str, Any]:
    """The echo-credentials variation reflects the credentials it got, as some gateways do: redaction's test."""
    if not state_of(request).on("echo-credentials"):
        return {}
    return {"x_echo": {"authorization": request.headers.get("authorization", ""),
                       "x-api-key": request.headers.get("x-api-key", "")}}


def error_response(request: Request, exc: ApiError) -> Response:
    state = state_of(request)
    if state.on("status-413-422") and exc.status == 400:  # the variation: other 4xx statuses for the same refusal
        exc = ApiError(413 if exc.too_large else 422, exc.code, exc.message)
    if state.on("echo-credentials"):
        exc = ApiError(exc.status, exc.code, f"{exc.message} (received {request.headers.get('authorization')})")
    response = mutate(request, "error.response", _error_response(request, exc), exc)
    if state.on("extra-fields") and response.media_type == "application/json":
        body = json.loads(response.body)
        body.update({"request_id": "req_reference", "x_gateway": {"route": request.url.path}})
        if isinstance(body.get("error"), dict):
            body["error"]["param"] = None
        response = JSONResponse(body, exc.status)
    return response


def _error_response(request: Request, exc: ApiError) -> Response:
    state = state_of(request)
    native = native_error(request, exc)
    if native is not None and not state.on("native-databricks-error-form"):
        return JSONResponse(native, exc.status)
    if state.on("openai-error-form"):
        return JSONResponse(
            {"error": {"message": exc.message, "type": "invalid_request_error", "code": exc.code.lower()}},
            exc.status,
        )
    return JSONResponse({"error_code": exc.code, "message": exc.message}, exc.status)


def words_of(value: Any) -> int:
    """Whitespace word count of every string in a value: the reference gateway's token count."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, dict):
        return sum(words_of(v) for k, v in value.items() if k not in ("type", "signature"))
    if isinstance(value, list):
        return sum(words_of(v) for v in value)
    return 0


# image, audio and video parts of every surface's request: Chat Completions' content parts (and the Anthropic and
# Responses forms), Gemini's inlineData / fileData parts (camelCase or snake_case)
MEDIA_PART_TYPES = frozenset({"image_url", "video_url", "audio_url", "image", "input_image", "input_audio"})
MEDIA_PART_KEYS = ("inlineData", "inline_data", "fileData", "file_data")
MEDIA_PART_TOKENS = 64  # what one media part costs on the reference gateway (its payload is not read as words)


def is_media_part(value: Any) -> bool:
    return isinstance(value, dict) and (value.get("type") in MEDIA_PART_TYPES
                                        or any(key in value for key in MEDIA_PART_KEYS))


def _split_media(value: Any, media: list[Any]) -> Any:
    """The value without its media parts, which are collected into `media`."""
    if isinstance(value, list):
        kept = []
        for item in value:
            if is_media_part(item):
                media.append(item)
            else:
                kept.append(_split_media(item, media))
        return kept
    if isinstance(value, dict):
        return {k: _split_media(v, media) for k, v in value.items()}
    return value


def _chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_chars(v) for v in value.values())
    if isinstance(value, list):
        return sum(_chars(v) for v in value)
    return 0


def prompt_tokens(request: Request, prompt: Any) -> int:
    """The prompt token count of a request: its words, plus what each image, audio or video part costs (001 "Each
    image in a request to a foundation model adds to your token usage"). The switches are asked only for a request
    with media parts: media-parts-dropped drops them silently (the model never sees them), the media-tokens-weighted
    variation counts each by its payload's size, as providers count tiles or seconds."""
    media: list[Any] = []
    text = _split_media(prompt, media)
    if not media:
        return words_of(prompt)
    on = state_of(request).on
    if on("media-parts-dropped"):
        return words_of(text)
    if on("media-tokens-weighted"):
        return words_of(text) + sum(1 + _chars(part) // 256 for part in media)
    return words_of(text) + MEDIA_PART_TOKENS * len(media)



# The reference model follows two kinds of instruction, as any chat model does: "Repeat this code exactly: X"
# is answered with X (the concurrent cases' nonces), and "in N words" with N words (streams long enough to time).
REPEAT_CODE = re.compile(r"\brepeat (?:this|the) code\b[^:]*:\s*([A-Za-z0-9][A-Za-z0-9-]*)", re.IGNORECASE)
WORDS_ASKED = re.compile(r"\bin (\d{1,3}) words\b", re.IGNORECASE)
MAX_WORDS_ASKED = 400


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _mentioning(prompt: Any, word: str) -> list[str]:
    """The prompt's strings that contain the word in any case: a case-insensitive regular expression is slow on
    the megabytes of a size-limit case, a casefolded `in` is not; a string with no space (an image's base64) is
    never casefolded: both instructions' patterns have literal spaces."""
    return [text for text in _strings(prompt) if " " in text and word in text.casefold()]


def asked_code(prompt: Any) -> str | None:
    """The code the prompt's last instruction asks to be repeated, if any."""
    found = [m.group(1) for text in _mentioning(prompt, "repeat") for m in REPEAT_CODE.finditer(text)]
    return found[-1] if found else None


def answer_words(request: Request, prompt: Any, streamed: bool = False) -> list[str]:
    """A deterministic answer: the same prompt gets the same words, different prompts different words. With the
    stream-other-sample variation a stream is another sample of the model than the whole answer to the same
    request: other words, another length."""
    on = state_of(request).on
    digest = seed_digest(["another sample", prompt] if streamed and on("stream-other-sample") else prompt)
    vocabulary = OTHER_WORDS if on("other-text") else WORDS
    asked = [int(m.group(1)) for text in _mentioning(prompt, "words") for m in WORDS_ASKED.finditer(text)]
    length = min(asked[-1], MAX_WORDS_ASKED) if asked else 9 + digest[0] % 6 + (7 if on("other-text") else 0)
    start = digest[1] % len(vocabulary)
    words = [vocabulary[(start + i) % len(vocabulary)] for i in range(max(1, length))]
    code = asked_code(prompt)
    if code is not None:
        words = repeated_code(request, code, words)
    if on("sse-split"):  # multi-byte UTF-8 characters, so that pieces of a stream cut through some
        words[1:3] = ["naïve", "café✓"]
    return words


def repeated_code(request: Request, code: str, words: list[str]) -> list[str]:
    """The answer to "repeat this code": the code; with the nonce-paraphrased variation, a live model's way of
    saying it (words around it, the code re-spelt in lower case with spaces between its characters); with
    other-text, other words before it."""
    on = state_of(request).on
    if on("nonce-paraphrased"):
        return ["Sure!", "The", "code", "you", "gave", "me", "is", *" ".join(code.lower()).split(), "-", "happy",
                "to", "help."]
    return [*(words[:5] if on("other-text") else []), code]


def cached_part(prompt_tokens: int) -> int:
    """usage-cached-tokens: how much of a prompt a stream reports as read from the prompt cache."""
    return prompt_tokens // 2


OTHER_TIMESTAMP = 1698824353  # 001's example response: "created": 1698824353


def created(request: Request) -> int:
    """Unix seconds now; the other-ids variation answers with a fixed time in the past (001's example)."""
    return OTHER_TIMESTAMP if state_of(request).on("other-ids") else int(time.time())


# the other-ids variation: ids of other shapes and lengths (UUIDs; a Bedrock-style Anthropic id)
OTHER_ID_PREFIXES = {"chatcmpl-": "", "msg_": "msg_bdrk_", "resp_": "resp_", "rs_": "rs_", "": ""}


def response_id(request: Request, prefix: str, seed: Any, nullable: bool = False) -> str | None:
    """A deterministic id; None with the null-id variation where the contract allows it (001's chat example
    response has "id": null)."""
    on = state_of(request).on
    if nullable and on("null-id"):
        return None
    digest = seed_digest(seed)
    if on("other-ids"):
        return OTHER_ID_PREFIXES.get(prefix, prefix) + str(uuid.UUID(bytes=digest[:16]))
    return prefix + digest.hex()[:24]


def seed_digest(seed: Any) -> bytes:
    """The deterministic hash behind ids and answers: the same request gets the same one."""
    return hashlib.sha256(json.dumps(_compact(seed), sort_keys=True, default=str).encode()).digest()


def _compact(value: Any) -> Any:
    """The seed of an id with long strings (megabytes of base64 images) stood in for by their length and CRC:
    still deterministic, without hashing every byte of a 10 MB request twice over."""
    if isinstance(value, str) and len(value) > 1024:
        return f"<{len(value)} chars, crc {zlib.crc32(value.encode())}>"
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def extra(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    """Unknown-but-harmless fields, added only by the extra-fields (and echo-credentials) variation."""
    return {**(fields if state_of(request).on("extra-fields") else {}), **echo(request)}


def positive_int(body: dict[str, Any], key: str, required: bool = False) -> int | None:
    value = body.get(key)
    if value is None:
        if required:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"'{key}' is required.")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"'{key}' must be a positive integer.")
    return value


# --- native provider error forms (003 Native APIs): each native route answers errors in its provider's form ---

ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                         404: "not_found_error", 413: "request_too_large", 422: "invalid_request_error",
                         429: "rate_limit_error"}
GOOGLE_ERROR_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                       405: "INVALID_ARGUMENT", 413: "INVALID_ARGUMENT", 422: "INVALID_ARGUMENT",
                       429: "RESOURCE_EXHAUSTED"}


def native_error(request: Request, exc: ApiError) -> dict[str, Any] | None:
    """The error body of a native route: Anthropic's or Google's form; None on the unified routes."""
    path = request.url.path
    if path.startswith("/ai-gateway/anthropic/"):
        return {"type": "error",
                "error": {"type": ANTHROPIC_ERROR_TYPES.get(exc.status, "api_error"), "message": exc.message}}
    if path.startswith("/ai-gateway/gemini/"):
        return {"error": {"code": exc.status, "message": exc.message,
                          "status": GOOGLE_ERROR_STATUS.get(exc.status, "INTERNAL")}}
    return None


def digest_id(prefix: str, seed: Any) -> str:
    """A deterministic id (for surfaces whose id may not be null, whatever the null-id variation says)."""
    return prefix + hashlib.sha256(json.dumps(seed, sort_keys=True, default=str).encode()).hexdigest()[:24]

