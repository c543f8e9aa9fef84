"""Write frames as a video: ``.mp4`` (H.264 through imageio's ffmpeg, the deploy extra) or ``.gif`` (Pillow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".gif")


def check_video_path(path: str | Path) -> Path:
    """``path`` if it names a video format this module writes; else one line saying which do."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"video {path}: the file must end in {' or '.join(VIDEO_SUFFIXES)}")
    return path


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: float) -> Path:
    """Write RGB uint8 frames [H, W, 3] to ``path`` at ``fps`` frames per second; returns the path."""
    path = check_video_path(path)
    if not frames:
        raise ValueError(f"video {path}: no frames to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        from PIL import Image

        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        return path
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary imageio writes MP4 with)
    except ImportError:
        raise ImportError("writing .mp4 needs imageio and imageio-ffmpeg (the deploy extra: pip install -e '.[deploy]'); .gif needs neither") from None
    # CRF 28: a 1000-step HalfCheetah episode at 480 x 272 is about 1.6 MB (quality=7 made it about 6 MB)
    imageio.mimwrite(
        path, list(frames), fps=fps, codec="libx264", quality=None, output_params=["-crf", "28"], macro_block_size=16
    )
    return path
