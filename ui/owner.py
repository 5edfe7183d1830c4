"""Who is using the app, so their training is theirs: the signed-in user where Streamlit's OIDC sign-in is
configured (`[auth]` in .streamlit/secrets.toml), else this browser.

A browser is known by a random token it keeps in a cookie, not by Streamlit's session id: that id changes on every
reload, new tab and reconnection, and the user who reloads must still own their run. The cookie is written by a
tiny component (JavaScript in the page, st.components.v2) and read back by the server from the request that opens
each session (`st.context.cookies`), so from the first run of a reloaded page on. Only a hash of the token (or of
the signed-in user) ever leaves this module: it is the owner's key, written into jobs and saved models.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping

import streamlit as st

from vae_core.jobs import Owner

COOKIE = "latent_explorer_owner"
COOKIE_MAX_AGE_S = 400 * 24 * 3600  # the most browsers keep a cookie for
TOKEN = re.compile(r"[0-9a-f]{32}")
TOKEN_KEY = "owner.token"  # this session's token: the cookie's, or a new one until the browser keeps it
NAME_KEY = "owner.name"  # the name others see, as typed on Train or Compare
KEEPER_KEY = "owner-cookie"
DEFAULT_NAME = "someone"

_KEEPER_JS = """
export default function ({ data, setStateValue }) {
  const held = document.cookie.split("; ").map((c) => c.split("=")).find(([name]) => name === data.cookie)?.[1];
  if (held && /^[0-9a-f]{32}$/.test(held)) {
    // Another tab of this browser wrote its token first: this session adopts it, so the browser stays one owner.
    if (held !== data.token) setStateValue("token", held);
  } else {
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = `${data.cookie}=${data.token}; path=/; max-age=${data.max_age}; SameSite=Strict${secure}`;
  }
}
"""
_keeper = st.components.v2.component("latent_explorer.owner_cookie", js=_KEEPER_JS, html="")


def owner_key(user: Mapping[str, object], token: str) -> str:
    """The owner's key: of the signed-in user (their issuer and subject, else their email) when `user` says one is
    signed in, else of the browser's token. A hash, so neither leaks where it is written."""
    if user.get("is_logged_in"):
        who = user.get("sub") or user.get("email")
        if who:
            return hashlib.sha256(f"user\0{user.get('iss', '')}\0{who}".encode()).hexdigest()
    return hashlib.sha256(f"browser\0{token}".encode()).hexdigest()


def sign_in_configured() -> bool:
    """True where the server has an `[auth]` section: st.user then always says whether someone is signed in."""
    return "is_logged_in" in st.user


def signed_in() -> bool:
    return bool(st.user.get("is_logged_in"))


@st.cache_resource
def _names() -> dict[str, str]:
    """The name each owner last gave, by owner key, so a reload (a new session) or another page starts from it."""
    return {}


def named(me: Owner, name: str) -> Owner:
    """`me` under the name they just typed, remembered for their next sessions."""
    _names()[me.key] = name
    return Owner(me.key, name)


def _adopt() -> None:
    reported = (st.session_state.get(KEEPER_KEY) or {}).get("token")
    if isinstance(reported, str) and TOKEN.fullmatch(reported):
        st.session_state[TOKEN_KEY] = reported


def _token() -> str:
    token = st.session_state.get(TOKEN_KEY)
    if token is None:
        cookie = st.context.cookies.get(COOKIE)  # what the browser sent: anything at all
        token = isinstance(cookie, str) and TOKEN.fullmatch(cookie) and cookie or secrets.token_hex(16)
        st.session_state[TOKEN_KEY] = token
    return token


def current() -> Owner:
    """Whoever runs this session, named as they chose (NAME_KEY, typed on Train or Compare, in this session or an
    earlier one), else as their sign-in says. Mounts the cookie keeper (in the sidebar, where it takes no room): call
    it once per page run."""
    user = st.user.to_dict()
    token = _token()
    if not user.get("is_logged_in"):
        with st.sidebar:
            _keeper(key=KEEPER_KEY, data={"cookie": COOKIE, "token": token, "max_age": COOKIE_MAX_AGE_S},
                    on_token_change=_adopt)
    key = owner_key(user, st.session_state[TOKEN_KEY])
    account = str(user.get("name") or user.get("email") or "") if user.get("is_logged_in") else ""
    return Owner(key, st.session_state.get(NAME_KEY) or _names().get(key) or account or DEFAULT_NAME)
