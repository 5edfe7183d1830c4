"""Latent Explorer's one entry point: `streamlit run app.py` registers every page with st.navigation."""
from __future__ import annotations

import streamlit as st

from ui.navigation import HOME, PAGES

st.set_page_config(page_title="Latent Explorer", page_icon="🧭", layout="wide")
st.navigation([st.Page(p.file, title=p.title, url_path=p.url_path or None, icon=p.icon, default=p is HOME)
               for p in PAGES]).run()
