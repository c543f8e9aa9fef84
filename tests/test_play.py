"""genpo play: episodes of a run's policy in its eval env, per-episode lines, and videos rendered headless."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from PIL import Image

from genpo.builders import GIN_DIR
from genpo.cli import main
from genpo.deployment.play import play_run


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(argument) for argument in argv])
    return code, out.getvalue(), err.getvalue()


def headless_gl_or_skip():
    from genpo.envs.mujoco_rendering import headless_gl_context

    try:
        headless_gl_context(16, 16).free()
    except RuntimeError as error:
        pytest.skip(str(error))


def test_play_prints_each_episode_and_writes_a_gif(tmp_path, make_tiny_experiment):
    make_tiny_experiment(tmp_path / "run")
    code, out, _ = run_cli("play", tmp_path / "run", "--episodes", 3, "--video", tmp_path / "pendulum.gif")
    lines = out.splitlines()
    assert code == 0
    assert sorted(line.split(":")[0] for line in lines[:3]) == ["episode 0", "episode 1", "episode 2"]
    assert all(line.endswith("length 12") for line in lines[:3])  # the tiny runs' 12-step episodes
    assert lines[3].startswith("mean return over 3 episode(s): ")
    assert lines[4] == f"video: {tmp_path / 'pendulum.gif'} (12 frames)"
    with Image.open(tmp_path / "pendulum.gif") as gif:
        assert gif.n_frames == 12 and gif.size == (480, 272)


def test_play_returns_what_evaluate_measures(tmp_path, make_tiny_experiment):
    from genpo.builders.evaluation import evaluate_run

    make_tiny_experiment(tmp_path / "run")
    played = play_run(tmp_path / "run", episodes=4, report=None)
    evaluated = evaluate_run(tmp_path / "run", episodes=4)
    assert [episode["length"] for episode in played["episodes"]] == [12] * 4
    assert played["return_mean"] == pytest.approx(evaluated["return_mean"], abs=1e-4)


def test_halfcheetah_video_renders_offscreen(tmp_path, make_tiny_experiment):
    """MuJoCo rendered with no display (EGL or OSMesa), written as MP4 like the docs' results video."""
    headless_gl_or_skip()
    pytest.importorskip("imageio_ffmpeg", reason="needs the deploy extra")
    make_tiny_experiment(tmp_path / "run", config=str(GIN_DIR / "tasks" / "halfcheetah.gin"), extra=["genpo.build_env.num_threads = 1"])
    video = tmp_path / "docs" / "results" / "halfcheetah_genpo.mp4"
    summary = play_run(tmp_path / "run", video=video, report=None)
    assert summary["video_frames"] == 12 and 1_000 < video.stat().st_size < 3_000_000
    import imageio.v2 as imageio

    frames = imageio.mimread(video)
    assert len(frames) == 12 and frames[0].shape == (272, 480, 3)
    assert np.asarray(frames[-1]).std() > 10  # a scene, not a blank frame


def test_two_goals_frames_are_drawn(tmp_path, make_tiny_experiment):
    make_tiny_experiment(tmp_path / "run", config=str(GIN_DIR / "tasks" / "two_goals.gin"))
    summary = play_run(tmp_path / "run", video=tmp_path / "two_goals.gif", report=None)
    assert summary["video_frames"] >= 1 and (tmp_path / "two_goals.gif").stat().st_size > 1_000


def test_a_video_needs_a_known_format(tmp_path, make_tiny_experiment):
    make_tiny_experiment(tmp_path / "run")
    code, _, err = run_cli("play", tmp_path / "run", "--video", tmp_path / "clip.avi")
    assert code == 2 and err.strip() == f"genpo play: error: video {tmp_path / 'clip.avi'}: the file must end in .mp4 or .gif"
