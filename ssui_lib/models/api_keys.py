"""Where an API key comes from and where it may go (the OpenAI-compatible backend's key rules).

``OPENAI_API_KEY`` is sent to https://api.openai.com and nowhere else. An ``openai-compatible:``
server gets the key in ``SSUI_API_KEY`` (or in the variable that ``SSUI_API_KEY_ENV`` names), and
none ("EMPTY") when that is unset. Plain ``http://`` is allowed only to loopback addresses unless
``SSUI_ALLOW_INSECURE_HTTP=1``. A key is stripped and must be printable ASCII; :class:`_Secret`
keeps it out of reprs and scrubs it from error text.
"""
from __future__ import annotations

import os
from urllib.parse import urlparse

from ssui_lib.core.errors import SSUIError

LOCAL_PLACEHOLDER_KEY = "EMPTY"  # what vLLM and most local servers accept when they check no key

OPENAI_KEY_ENV = "OPENAI_API_KEY"  # sent to api.openai.com and nowhere else
COMPAT_KEY_ENV = "SSUI_API_KEY"  # the default variable holding an openai-compatible server's key
COMPAT_KEY_ENV_SELECTOR = "SSUI_API_KEY_ENV"  # names another variable to read that key from
ALLOW_HTTP_ENV = "SSUI_ALLOW_INSECURE_HTTP"  # "1": plain http:// to a host that is not loopback


def is_openai_endpoint(base_url: str | None) -> bool:
    """True for the OpenAI API itself (https://api.openai.com), the one place OPENAI_API_KEY goes."""
    if base_url is None:
        return True
    u = urlparse(base_url)
    return u.scheme == "https" and (u.hostname or "") == "api.openai.com"


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1."""
    import ipaddress

    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, name: str) -> str:
    """The URL, checked: http(s) with a host; plain ``http://`` only to a loopback address unless
    the environment variable SSUI_ALLOW_INSECURE_HTTP is ``1`` (the request, and any key, would
    cross the network in clear text)."""
    u = urlparse(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise SSUIError(f"{name}: URL {url!r} must be http:// or https:// with a host")
    if u.scheme == "http" and not is_loopback(u.hostname) and os.environ.get(ALLOW_HTTP_ENV) != "1":
        raise SSUIError(f"{name}: plain http:// to {u.hostname} (not a loopback address) is refused: use https://, "
                        f"or set {ALLOW_HTTP_ENV}=1 to allow unencrypted requests to that host")
    return url


def check_key(key: str, var: str, name: str) -> str:
    """The key with surrounding whitespace stripped; SSUIError (naming the variable, never the
    value) if what remains holds a character that is not printable ASCII."""
    key = key.strip()
    for i, ch in enumerate(key):
        if not (0x20 <= ord(ch) < 0x7F):
            raise SSUIError(f"{name}: the API key in {var} has a non-printable or non-ASCII character at position {i} "
                            f"(expected printable ASCII; check how the variable was set)")
    return key


def key_variable(api_key_env: str | None, base_url: str | None, name: str) -> str:
    """The environment variable a model's key comes from: OPENAI_API_KEY for api.openai.com; for
    any other server the variable named by $SSUI_API_KEY_ENV, else SSUI_API_KEY — never
    OPENAI_API_KEY, so a model or judge name pointing at someone else's server cannot take it."""
    if is_openai_endpoint(base_url):
        return api_key_env or OPENAI_KEY_ENV
    var = api_key_env or os.environ.get(COMPAT_KEY_ENV_SELECTOR, "").strip() or COMPAT_KEY_ENV
    if var == OPENAI_KEY_ENV:
        raise SSUIError(f"{name}: {OPENAI_KEY_ENV} is sent only to https://api.openai.com; put this server's key "
                        f"in {COMPAT_KEY_ENV} (or name its variable in {COMPAT_KEY_ENV_SELECTOR})")
    return var


def resolve_api_key(api_key: str | None, api_key_env: str | None, base_url: str | None, name: str) -> str:
    """The key from the argument, else from :func:`key_variable`; a server other than
    api.openai.com without one gets "EMPTY" (what local servers that check no key accept)."""
    var = "api_key" if api_key else key_variable(api_key_env, base_url, name)
    key = check_key(api_key or os.environ.get(var) or "", var, name)
    if key:
        return key
    if is_openai_endpoint(base_url):
        raise SSUIError(f"{name}: no API key: set the environment variable {var}")
    return LOCAL_PLACEHOLDER_KEY


class _Secret:
    """Holds the key; its repr never shows it (so vars(model) or a debugger dump stays clean)."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of the key masked."""
        v = self._value
        if v and v != LOCAL_PLACEHOLDER_KEY and v in text:
            text = text.replace(v, "***")
        return text

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

