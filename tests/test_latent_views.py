"""What ui.latent_views writes out: the latents CSV."""
from __future__ import annotations

import numpy as np

from ui.latent_views import latents_csv


def test_latents_csv_has_one_row_per_image():
    mu = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -0.25]], np.float32)
    sigma = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], np.float32)
    lines = latents_csv(mu, sigma, np.array([7, 2])).decode().splitlines()
    assert lines[0] == "index,label,mu_0,mu_1,mu_2,sigma_0,sigma_1,sigma_2"
    assert lines[1] == "0,7,0.5,-1,2,0.1,0.2,0.3"
    assert lines[2] == "1,2,1,0,-0.25,0.4,0.5,0.6"
    assert len(lines) == 3
