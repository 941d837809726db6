"""nanofourdnex: a minimal, readable, fully tested reference implementation of 4DNeX.

4DNeX (Chen et al., 2025) turns one image into a "6D video": an RGB video and a
pixel-aligned XYZ point-map video, by LoRA fine-tuning the Wan2.1 image-to-video DiT.
Each module implements one equation or one stage of the paper; its docstring opens
with the equation it computes.
"""

__version__ = "0.1.0"
