"""Latent Explorer's VAE engine: data, model, loss, training, evaluation, inference and checkpoints.

No Streamlit here: the app, the CLI (`python -m vae_core`) and scripts all call the same functions.
"""
