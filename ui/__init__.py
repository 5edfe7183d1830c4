"""Streamlit glue shared by the pages: cached models, data and encodings, and the model picker."""
