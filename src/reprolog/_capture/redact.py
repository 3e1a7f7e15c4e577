"""The one redaction function family: masks secrets in env, argv, params, tags, URLs and text."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "is_secret_name",
    "redact_argv",
    "redact_mapping",
    "redact_text",
    "redact_url",
    "redact_value",
    "redacted_names",
]

REDACTED = "[REDACTED]"

# Words that make any name secret wherever they appear (after splitting on _, -, ., camelCase).
_SECRET_WORDS = frozenset(
    {
        "secret",
        "secrets",
        "password",
        "passwords",
        "passwd",
        "passphrase",
        "apikey",
        "credential",
        "credentials",
        "auth",
        "oauth",
        "authorization",
        "authentication",
        "authtoken",
        "accesstoken",
        "accesskey",
        "privatekey",
        "secretkey",
        "pat",
    }
)
# "<word>_key" pairs that name secrets; "key" alone ("sort_key", "monitor_key") does not.
_KEY_QUALIFIERS = frozenset(
    {"api", "access", "private", "secret", "account", "signing", "encryption", "master", "ssh"}
)
# "<qualifier>_token" names a vocabulary item of a tokenizer, not a credential.
_NLP_TOKEN_QUALIFIERS = frozenset(
    {
        "cls",
        "pad",
        "eos",
        "bos",
        "unk",
        "sep",
        "mask",
        "start",
        "end",
        "special",
        "added",
        "begin",
        "first",
        "last",
        "next",
        "prev",
        "eot",
        "eom",
        "boi",
        "eoi",
        "image",
        "audio",
        "video",
        "vision",
        "decoder",
        "encoder",
        "sys",
        "system",
        "user",
        "assistant",
        "max",
        "min",
        "num",
        "new",
        "extra",
        "default",
        "use",
        "stop",
        "think",
        "tool",
        "fim",
        "prefix",
        "suffix",
        "middle",
        "sentinel",
        "placeholder",
        "word",
        "subword",
        "char",
    }
)
# Words after "token" that keep it secret ("HF_TOKEN_VALUE"); any other word ("pad_token_id",
# "token_type_ids", "hf_token_path") names something about a token, not the token itself.
_TOKEN_SECRET_SUFFIXES = frozenset({"value", "str", "string", "b64", "base64", "secret", "key"})

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[^A-Za-z0-9]+")

# Known token formats, each with the literal(s) it cannot match without: a C-speed substring test
# skips the (much slower) regex scan on the usual text that holds none of them.
_TOKEN_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    (("hf_",), re.compile(r"\bhf_[A-Za-z0-9]{20,}")),  # Hugging Face
    (("sk-",), re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")),  # OpenAI / Anthropic style
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}")),
    (("github_pat_",), re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}")),  # GitHub fine-grained
    (("glpat-",), re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),  # GitLab
    (("xox",), re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),  # Slack
    (("AIza",), re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),  # Google API key
    (("pypi-",), re.compile(r"\bpypi-[A-Za-z0-9_-]{50,}")),  # PyPI upload token
    (
        ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "ABIA", "ACCA"),
        re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    ),  # AWS access key id
    (("eyJ",), re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),  # JWT
    (("Bearer", "bearer", "BEARER"), re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{8,}=*")),
)
# scheme://userinfo@ — the userinfo (user, user:password, or a bare token) is masked.
_URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^/\s@?#]+)@")
# name=value / name: value / "name": "value" assignments in free text (.env files, diffs, YAML).
# The lookbehind starts a match only at the start of a name (no quadratic retries inside one).
_ASSIGNMENT = re.compile(
    r"""(?<![A-Za-z0-9_.-])(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)(?P<q1>["']?)"""
    r"""(?P<sep>[ \t]*[:=][ \t]*)(?P<q2>["']?)(?P<value>[^\s"',;]+)"""
)
# Every secret name (see is_secret_name) contains one of these, lower-cased; only lines that
# hold one are searched for assignments.
_NAME_HINTS = ("token", "secret", "pass", "key", "credential", "auth", "pat")

# Values that are plainly code (calls, subscripts, dotted attribute paths), not literal secrets:
# masking them would only make a captured diff unusable.
_CODE_VALUE = re.compile(r"^(?:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+|.*[(\[{].*)$")


def _words(name: str) -> list[str]:
    return [w.lower() for w in _SPLIT.split(_CAMEL.sub("_", name)) if w]


def is_secret_name(name: str) -> bool:
    """Tell whether a name (env var, param, flag, dotted path) looks like it holds a secret.

    It matches token, secret, password, passwd, api_key, apikey, access_key, private_key,
    credential and auth, and keeps benign look-alikes such as ``use_cls_token``, ``max_tokens``,
    ``pad_token_id`` and ``tokenizer_name``.

    Args:
        name: the name to test, in any case or separator style.

    Returns:
        True when values under this name must be masked.
    """
    words = _words(name)
    for i, word in enumerate(words):
        if word in _SECRET_WORDS:
            return True
        if word in ("key", "keys") and i > 0 and words[i - 1] in _KEY_QUALIFIERS:
            return True
        if word == "token":
            before = words[i - 1] if i > 0 else ""
            after = words[i + 1 :]
            if before in _NLP_TOKEN_QUALIFIERS:
                continue
            if all(w in _TOKEN_SECRET_SUFFIXES for w in after):
                return True
        elif word.endswith(("token", "secret", "password", "passwd", "apikey")) and not (
            word.endswith("tokens")
        ):
            # glued forms: "hftoken", "clientsecret", "dbpassword"
            return True
    return False


def redact_text(text: str) -> tuple[str, int]:
    """Mask token-looking substrings, URL credentials and secret-named assignments in free text.

    Args:
        text: any text (a diff, a file, a command-line argument).

    Returns:
        The masked text and the number of substrings masked.
    """
    count = 0

    def _sub(match: re.Match[str]) -> str:
        nonlocal count
        if match.group(0) == REDACTED:
            return match.group(0)
        count += 1
        return REDACTED

    for needles, pattern in _TOKEN_PATTERNS:
        if any(needle in text for needle in needles):
            text = pattern.sub(_sub, text)

    def _userinfo(match: re.Match[str]) -> str:
        nonlocal count
        info = match.group(2)
        if info in ("git", REDACTED):  # ssh://git@host is a convention, not a credential
            return match.group(0)
        count += 1
        return f"{match.group(1)}{REDACTED}@"

    if "://" in text:
        text = _URL_USERINFO.sub(_userinfo, text)

    def _assign(match: re.Match[str]) -> str:
        nonlocal count
        value = match.group("value")
        if value == REDACTED or not is_secret_name(match.group("name")):
            return match.group(0)
        if value.lower() in ("true", "false", "none", "null", "|", ">") or _CODE_VALUE.match(value):
            return match.group(0)
        count += 1
        start, end = match.span("value")
        whole_start = match.start()
        m0 = match.group(0)
        return m0[: start - whole_start] + REDACTED + m0[end - whole_start :]

    lower = text.lower()
    starts: set[int] = set()
    for hint in _NAME_HINTS:
        at = lower.find(hint)
        while at != -1:
            starts.add(text.rfind("\n", 0, at) + 1)
            at = lower.find(hint, at + len(hint))
    if starts:
        pieces: list[str] = []
        done = 0
        for start in sorted(starts):
            end = text.find("\n", start)
            end = len(text) if end == -1 else end
            pieces.append(text[done:start])
            pieces.append(_ASSIGNMENT.sub(_assign, text[start:end]))
            done = end
        pieces.append(text[done:])
        text = "".join(pieces)
    return text, count


def redact_url(url: str) -> str:
    """Strip credentials from a URL: userinfo and secret-named query parameters.

    ``https://user:tok@host/x`` becomes ``https://host/x``; ``ssh://git@host`` and scp-like
    ``git@host:org/repo`` keep their conventional ``git`` user.

    Args:
        url: any URL or git remote.

    Returns:
        The URL without credentials (token-looking substrings masked as well).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)[0]
    if not parts.scheme or not parts.netloc:
        return redact_text(url)[0]
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        keep_user = userinfo == "git" and parts.scheme in ("ssh", "git+ssh")
        netloc = netloc if keep_user else hostport
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        masked = [
            (k, REDACTED if is_secret_name(k) or _words(k)[-1:] in (["sig"], ["signature"]) else v)
            for k, v in pairs
        ]
        if masked != pairs:
            query = urlencode(masked, safe="[]")
    cleaned = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return redact_text(cleaned)[0]


def redact_value(name: str | None, value: object) -> tuple[object, bool]:
    """Mask one value, by its name and by its content.

    A secret-looking name masks the whole value (None and booleans are kept: they hold no
    secret, e.g. ``use_auth_token=True``); strings are scanned for known token formats and URL
    credentials; lists and mappings are masked element by element.

    Args:
        name: the value's name (env var, param, flag), or None when it has none.
        value: the value.

    Returns:
        ``(masked value, was_redacted)``; the input is never modified.
    """
    if value is None or isinstance(value, bool):
        return value, False
    if name is not None and is_secret_name(name):
        if isinstance(value, str) and value in ("", REDACTED):
            return value, False
        return REDACTED, True
    if isinstance(value, str):
        if "://" in value:
            masked = redact_url(value) if " " not in value.strip() else redact_text(value)[0]
            return masked, masked != value
        text, n = redact_text(value)
        return text, n > 0
    if isinstance(value, Mapping):
        masked_map, names = redact_mapping(value)
        return masked_map, bool(names)
    if isinstance(value, (list, tuple)):
        out: list[object] = []
        any_masked = False
        for item in value:
            m, hit = redact_value(None, item)
            out.append(m)
            any_masked = any_masked or hit
        return (type(value)(out) if isinstance(value, tuple) else out), any_masked
    return value, False


def redact_mapping(mapping: Mapping[str, object]) -> tuple[dict[str, object], list[str]]:
    """Mask a mapping recursively (params, tags, env vars).

    Args:
        mapping: name → value; nested mappings and lists are followed.

    Returns:
        A masked copy and the dotted paths of the values that were masked (never the values).
    """
    out: dict[str, object] = {}
    names: list[str] = []
    for key, value in mapping.items():
        skey = str(key)
        if isinstance(value, Mapping) and not is_secret_name(skey):
            sub, sub_names = redact_mapping(value)
            out[skey] = sub
            names.extend(f"{skey}.{n}" for n in sub_names)
            continue
        if isinstance(value, (list, tuple)) and not is_secret_name(skey):
            items: list[object] = []
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    sub, sub_names = redact_mapping(item)
                    items.append(sub)
                    names.extend(f"{skey}.{i}.{n}" for n in sub_names)
                else:
                    m, hit = redact_value(None, item)
                    items.append(m)
                    if hit:
                        names.append(f"{skey}.{i}")
            out[skey] = items
            continue
        masked, hit = redact_value(skey, value)
        out[skey] = masked
        if hit:
            names.append(skey)
    return out, names


def redact_argv(argv: Sequence[str]) -> tuple[list[str], list[int]]:
    """Mask secrets in a command line: ``--token X``, ``--api-key=X``, ``key=value``, raw tokens.

    Args:
        argv: the arguments, e.g. ``sys.argv``.

    Returns:
        The masked arguments and the indexes that were masked.
    """
    out: list[str] = []
    hits: list[int] = []
    mask_next = False
    for i, arg in enumerate(argv):
        arg = str(arg)
        if mask_next and not arg.startswith("-"):
            out.append(REDACTED)
            hits.append(i)
            mask_next = False
            continue
        mask_next = False
        flag, eq, val = arg.partition("=")
        if eq and flag and " " not in flag:
            masked, hit = redact_value(flag.lstrip("-+~"), val)
            if hit:
                out.append(f"{flag}={masked}")
                hits.append(i)
                continue
        elif arg.startswith("-") and is_secret_name(arg.lstrip("-")):
            mask_next = True
        text, n = redact_text(arg)
        if "://" in arg:
            text = redact_url(text)
        out.append(text)
        if n or text != arg:
            hits.append(i)
    return out, hits


def redacted_names(prefix: str, names: Iterable[str]) -> list[str]:
    """Prefix redacted names for the capture report (``"env." + "HF_TOKEN"``)."""
    return [f"{prefix}{n}" for n in names]
