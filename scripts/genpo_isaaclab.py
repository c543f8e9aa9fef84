"""Run a ``genpo`` command on Isaac Lab, with Isaac Lab 2.x's Kit started before torch is imported.

    python scripts/genpo_isaaclab.py [--kit-device cuda:0] [--kit-visualizer kit] train gin/isaaclab/ant.gin ...

Isaac Lab 2.x starts Kit with its ``AppLauncher`` before anything else is imported (its train.py does so;
its launcher notes that torch's NumPy/OpenBLAS import can crash Kit's start-up), while ``import genpo``
imports torch. This script starts Kit first (``--kit-device`` must equal the run's ``genpo.run.device``;
under torchrun both default to the rank's GPU, ``cuda:LOCAL_RANK``), then runs the genpo command line unchanged. On Isaac Lab 3.x it only runs the command: there
``launch_simulation`` needs the task's config, which the adapter loads first, as Isaac Lab's 3.x train.py does.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys


def kit_launcher_argv(device: str, visualizer: str | None) -> list[str]:
    """Isaac Lab 2.x launcher arguments (the same as ``genpo.envs.isaaclab.launcher_argv(2, ...)``)."""
    return ["--device", device] + ([] if visualizer else ["--headless"])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument(
        "--kit-device",
        default=f"cuda:{os.environ.get('LOCAL_RANK', '0')}",
        help="device Kit simulates on (Isaac Lab 2.x; default cuda:0, under torchrun the rank's GPU)",
    )
    parser.add_argument("--kit-visualizer", default=None, help="open a viewer (Isaac Lab 2.x: any value)")
    own, genpo_argv = parser.parse_known_args(argv)
    try:
        major = int(importlib.metadata.version("isaaclab").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        major = None  # genpo names the install when the env is built
    app = None
    if major is not None and major < 3:
        from isaaclab.app import AppLauncher

        launcher_parser = argparse.ArgumentParser(add_help=False)
        AppLauncher.add_app_launcher_args(launcher_parser)
        launcher_args = launcher_parser.parse_args(kit_launcher_argv(own.kit_device, own.kit_visualizer))
        saved, sys.argv = sys.argv, sys.argv[:1]  # Kit reads sys.argv; genpo's arguments are not for it
        try:
            app = AppLauncher(launcher_args)
        finally:
            sys.argv = saved

    from genpo import cli
    from genpo.envs import isaaclab

    if app is not None:
        isaaclab.adopt_simulation_app(app, own.kit_device)
    return cli.main(genpo_argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
