"""Glossary: every word the pages use, in plain language (the text is in app_pages/guide.py)."""
import streamlit as st

from app_pages import common, guide

common.header("glossary")
for term, meaning in guide.GLOSSARY.items():
    st.markdown(f"**{common.plain(term)}**: {common.plain(meaning)}")
