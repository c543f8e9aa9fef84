"""Offscreen rendering of one MuJoCo simulation state on a machine without a display.

A batched env keeps its simulations in ``mujoco.batch.Batch`` rows, not in ``MjData`` objects, so a
frame is drawn from a state copied out of a row (``env.qpos[i]``, ``env.qvel[i]``) into this renderer's
own ``MjData`` (positions recomputed by ``mj_forward``): rendering never touches the simulation.

The GL context is a headless one: EGL (Mesa's software or a GPU driver) or OSMesa, chosen here rather
than through ``MUJOCO_GL`` alone, because ``import mujoco`` fixes that choice at import time and genpo
imports MuJoCo long before a video is asked for. ``MUJOCO_GL=egl|osmesa|glfw`` still forces a backend.
"""

from __future__ import annotations

import copy
import importlib
import os

import mujoco
import numpy as np

HEADLESS_BACKENDS = ("egl", "osmesa")
MISSING_GL_HINT = (
    "install EGL (Debian/Ubuntu: apt-get install libegl1 libgl1-mesa-dri) or OSMesa (apt-get install libosmesa6), "
    "or set MUJOCO_GL to a backend that works here"
)


def headless_gl_context(width: int, height: int):
    """A current GL context of ``MUJOCO_GL``'s backend if it names one, else the first of EGL, OSMesa that works."""
    requested = os.environ.get("MUJOCO_GL", "").lower().strip()
    backends = [requested] if requested in (*HEADLESS_BACKENDS, "glfw") else list(HEADLESS_BACKENDS)
    failures = []
    for backend in backends:
        try:
            context = importlib.import_module(f"mujoco.{backend}").GLContext(width, height)
            context.make_current()
            return context
        except Exception as error:  # each backend fails its own way (ImportError, OSError, RuntimeError, ...)
            lines = str(error).strip().splitlines()
            failures.append(f"{backend}: {type(error).__name__}: {lines[-1] if lines else ''}")
    raise RuntimeError(f"MuJoCo offscreen rendering: no headless GL backend works ({'; '.join(failures)}); {MISSING_GL_HINT}")


class OffscreenRenderer:
    """RGB frames [height, width, 3] of states of ``model``, seen by a camera tracking body ``track_body``.

    The default view (side-on, ``distance`` away, slightly above) suits the locomotion tasks.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        width: int = 480,
        height: int = 272,
        *,
        track_body: int = 1,
        distance: float = 3.0,
        elevation: float = -20.0,
        azimuth: float = 90.0,
    ):
        self.model = copy.deepcopy(model)  # the offscreen buffer size is a model field; the env's stays as it is
        visual = self.model.vis.global_
        visual.offwidth, visual.offheight = max(visual.offwidth, width), max(visual.offheight, height)
        self.width, self.height = width, height
        self.data = mujoco.MjData(self.model)
        self.context = headless_gl_context(width, height)
        self.render_context = mujoco.MjrContext(self.model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self.render_context)
        self.scene = mujoco.MjvScene(self.model, maxgeom=2000)
        self.option = mujoco.MjvOption()
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        self.camera.trackbodyid = track_body
        self.camera.distance = distance
        self.camera.elevation = elevation
        self.camera.azimuth = azimuth
        self.viewport = mujoco.MjrRect(0, 0, width, height)

    def render(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """The frame of the state (qpos, qvel), as uint8 RGB rows top to bottom."""
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)
        self.context.make_current()
        mujoco.mjv_updateScene(self.model, self.data, self.option, None, self.camera, mujoco.mjtCatBit.mjCAT_ALL, self.scene)
        mujoco.mjr_render(self.viewport, self.scene, self.render_context)
        pixels = np.empty((self.height, self.width, 3), dtype=np.uint8)
        mujoco.mjr_readPixels(pixels, None, self.viewport, self.render_context)
        return np.flipud(pixels).copy()

    def close(self) -> None:
        if self.context is not None:
            self.render_context.free()
            self.context.free()
            self.context = None
