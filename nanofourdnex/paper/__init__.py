"""The paper's equations and algorithms, one module each, in the paper's order; pure functions and small classes.

    curvature          §3.3, Eq. 1    camera smoothness: velocity, acceleration, curvature
    quality            §3.1-3.3       luminance, MCV and HCPR filters
    flow_matching      §4.1, Eq. 5-6  the probability path, the loss, the sampler and paper time ↔ Wan's timestep
    fusion             §4.2, Fig. 4-5 fusion strategies (the one axis table) and token interaction distance
    xyz_init           §4.3, Eq. 7    the sloped-plane X^init
    normalization      §4.3, Eq. 8-9  XYZ latent normalisation and the tracing of μ, σ
    mask               §4.3, Eq. 10   the guided mask in Wan's I2V layout
    token_encoding     §4.3, Eq. 11   shared RoPE and domain embeddings
    reprojection       §4.3, Eq. 12-13 cameras and depth from XYZ maps (steps 1-4; the start in reprojection_start)

They import nothing from the rest of the package (torch, numpy and diffusers only); the pipeline imports them.
Each module's docstring opens with its equation and ends with its spec page and tests.
"""
