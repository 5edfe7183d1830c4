"""Being replaced by `vae_core.models`: the names the trainer and the job runner still import from here."""
from .models import VAE, LatentModel, build_model  # noqa: F401
