"""Gymnasium's MuJoCo model files, compiled as gymnasium compiles them (the batched locomotion envs
reuse gymnasium's MJCF so that their physics is gymnasium's, bit for bit)."""

from __future__ import annotations

import importlib.util
import os

import mujoco
import numpy as np


def gymnasium_asset(xml_file: str) -> str:
    """Path of a MJCF file shipped with the installed gymnasium (found without importing its
    ``envs.mujoco`` package, which needs the optional rendering dependencies)."""
    spec = importlib.util.find_spec("gymnasium")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("gymnasium is not installed: the MuJoCo locomotion envs load its MJCF assets")
    path = os.path.join(spec.submodule_search_locations[0], "envs", "mujoco", "assets", xml_file)
    if not os.path.exists(path):
        raise FileNotFoundError(f"gymnasium ships no MuJoCo asset {xml_file!r} (looked for {path})")
    return path


def compile_gymnasium_model(xml_file: str) -> mujoco.MjModel:
    """The ``MjModel`` that ``mujoco.MjModel.from_xml_path`` compiles from a gymnasium asset, bit for bit,
    without MuJoCo's deprecation warning for ``<compiler settotalmass>`` (which half_cheetah.xml sets).

    The deprecated attribute is cleared in the spec and replaced by its documented equivalent on the
    compiled model, ``mj_setTotalmass`` then ``mj_setConst``. The compiler also derives the
    ``meanmass`` and ``meaninertia`` statistics (which scale the solver's tolerances) after its mass
    scaling, and ``mj_setConst`` leaves them alone: they are recomputed here as the compiler computes
    them, unless the model sets them. Other compiler warnings are untouched.
    """
    spec = mujoco.MjSpec.from_file(gymnasium_asset(xml_file))
    total_mass = spec.compiler.settotalmass
    if total_mass <= 0:  # not set: nothing is deprecated
        return spec.compile()
    spec.compiler.settotalmass = -1
    model = spec.compile()
    mujoco.mj_setTotalmass(model, total_mass)
    data = mujoco.MjData(model)
    mujoco.mj_setConst(model, data)
    # Sequential float64 sums in the compiler's order, so that the statistics match bit for bit.
    if np.isnan(spec.stat.meanmass) and model.nbody > 1:
        mass_sum = 0.0
        for body in range(1, model.nbody):
            mass_sum += float(model.body_mass[body])
        model.stat.meanmass = mass_sum / (model.nbody - 1)
    if np.isnan(spec.stat.meaninertia) and model.nv:
        mujoco.mj_forward(model, data)  # the mass matrix at qpos0, armature included
        diagonal = model.M_rowadr + model.M_rownnz - 1  # each row of the sparse M ends on the diagonal
        inertia_sum = 0.0
        for dof in range(model.nv):
            inertia_sum += float(data.M[diagonal[dof]])
        model.stat.meaninertia = inertia_sum / model.nv
    return model
