"""``genpo play``: run a trained policy in its task's env, episode by episode, optionally filming one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from genpo.builders.evaluation import restore_policy
from genpo.deployment.frames import frame_source
from genpo.deployment.policy import check_genpo_run, policy_of
from genpo.deployment.video import check_video_path, write_video
from genpo.training.run_folder import check_output_file
from genpo.training.wandb_logger import log_video

DEFAULT_FPS = 20.0


def play_run(
    run_dir: str | Path,
    *,
    episodes: int = 1,
    noise: str = "zero",
    seed: int = 12345,
    checkpoint: str | Path = "latest",
    device: str | None = None,
    video: str | Path | None = None,
    report: Callable[[str], None] | None = print,
) -> dict:
    """Play ``episodes`` episodes (the first episode of each of that many envs, stepped together) of the
    run's policy (:func:`~genpo.deployment.policy.load_policy`'s, with ``noise`` seeded by ``seed``) in the
    run's eval-scoped env, as ``genpo evaluate`` builds it. ``report`` gets one line per finished episode.

    ``video``: write env 0's episode to this ``.mp4`` or ``.gif`` (MuJoCo tasks rendered offscreen; the
    pure-torch tasks drawn with matplotlib), at the env's control rate; a run that logs to Weights & Biases
    (``genpo.run.logger = 'wandb'``) gets the video in its W&B run too.
    """
    if episodes < 1:
        raise ValueError(f"play: episodes must be >= 1, got {episodes!r}")
    video = None if video is None else check_output_file(check_video_path(video), "--video")
    check_genpo_run(run_dir, "play")
    restored = restore_policy(run_dir, num_envs=episodes, seed=seed, checkpoint=checkpoint, device=device)
    env = restored.env
    policy = policy_of(restored, noise=noise, seed=seed)
    frames = frame_source(env) if video is not None else None
    images = []
    try:
        observation = env.reset()["observation"]
        if frames is not None:
            images.append(frames(observation))
        returns = torch.zeros(env.num_envs, device=env.device)
        lengths = torch.zeros(env.num_envs, dtype=torch.long, device=env.device)
        finished = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
        for _ in range(env.max_episode_steps):
            result = env.step(policy(observation))
            active = ~finished
            returns += result["reward"] * active
            lengths += active.long()
            done = (result["terminated"] | result["truncated"]) & active
            observation = result["observation"]
            if frames is not None and not (finished[0] or done[0]):
                images.append(frames(observation))  # after a done step env 0 shows its next episode
            for index in done.nonzero().flatten().tolist():
                if report is not None:
                    report(f"episode {index}: return {returns[index].item():.2f}, length {lengths[index].item()}")
            finished |= done
            if finished.all():
                break
    finally:
        if frames is not None:
            frames.close()
        env.close()
    summary = {
        "run_dir": str(run_dir),
        "checkpoint": str(restored.checkpoint),
        "checkpoint_iteration": restored.iteration,
        "noise": noise,
        "episodes": [{"return": r, "length": n} for r, n in zip(returns.tolist(), lengths.tolist(), strict=True)],
        "return_mean": returns.mean().item(),
    }
    if video is not None:
        fps = 1.0 / env.dt if getattr(env, "dt", None) else DEFAULT_FPS
        summary["video"] = str(write_video(images, video, fps))
        summary["video_frames"] = len(images)
        wandb_run = log_video(run_dir, Path(summary["video"]), restored.iteration)
        if wandb_run is not None:
            summary["wandb_run"] = wandb_run
    return summary
