"""The st.session_state keys shared between pages, or between a page and ui/; tests set them too.

Plain keys, not widget keys: Streamlit drops a widget's state when its page is left, these survive page switches.
Keys that only one page reads and writes stay with that page.
"""
from __future__ import annotations

SELECTED_MODEL = "selected_model"  # the model every page shows: set by the picker, and by Train once it saves one
MODEL_PICKER = "_model_picker"  # the picker's widget key; it follows SELECTED_MODEL, which a user's choice sets first
CLICKED_LATENTS = "clicked_latents"  # latents last clicked on the Latent Map (numpy, most recent last), for Interpolate
TRAIN_JOB = "train.job_id"  # the training job this session started (stored by ui.training.start_button)
SWEEP_JOB = "compare.job_id"  # the β sweep this session started, likewise
DRAWN_DIGITS = "drawn_digits"  # PNGs of digits drawn on the Latent Map's pad and sent to Reconstruct
COMPARED_SELECTION = "compared_selection"  # {"dataset", split: [indices]}: images selected on the Latent Map for Compare
