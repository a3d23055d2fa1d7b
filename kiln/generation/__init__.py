"""Image and video generation, framework-free: the digits diffusion model Kiln trains (``digits``), the
hub pipelines users bring (``hub``: Stable Diffusion, SDXL, text/image-to-video), prompt grounding,
sampling with progress and cancel between denoising steps, and writing PNG/GIF/MP4 outputs. The API and
the task types (kiln/tasks/types/generation.py) call this; nothing here imports a web or pipeline framework."""
