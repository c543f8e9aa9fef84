"""The batched MuJoCo locomotion envs against gymnasium's v5 envs, and the BatchedEnv contract."""

import gymnasium
import mujoco
import numpy as np
import pytest
import torch

import genpo  # noqa: F401  (registers the envs)
from genpo import registry
from genpo.envs.gym_adapter import GymnasiumBatchedEnv, settotalmass_deprecation_silenced
from genpo.envs.mujoco_assets import gymnasium_asset

GYMNASIUM_IDS = {
    "halfcheetah": "HalfCheetah-v5",
    "hopper": "Hopper-v5",
    "walker2d": "Walker2d-v5",
    "ant": "Ant-v5",
    "humanoid": "Humanoid-v5",
}
CONTACT_FORCE_OBSERVATION = {"ant": slice(27, None), "humanoid": slice(-78, None)}


@pytest.fixture(autouse=True)
def mujoco_log_outside_checkout(tmp_path, monkeypatch):
    """MuJoCo appends its warnings (gymnasium's half_cheetah.xml compiles with one when gymnasium loads
    it) to MUJOCO_LOG.TXT in the working directory: keep that file out of the checkout."""
    monkeypatch.chdir(tmp_path)


def make(name, num_envs, **kwargs):
    return registry.get("env", name)(num_envs, num_threads=2, **kwargs)


def random_actions(env, rng, steps):
    """Actions over 1.5x the ctrlrange (exercising MuJoCo's clamping), float32 as a policy gives."""
    low, high = 1.5 * env.model.actuator_ctrlrange.T
    return rng.uniform(low, high, (steps, env.num_envs, env.action_dim)).astype(np.float32)


@pytest.mark.parametrize("name", GYMNASIUM_IDS)
def test_steps_match_gymnasium(name):
    """Same state and actions: observations (incl. final ones) agree bit for bit in float64, rewards to
    1e-6 (Humanoid's mass centre sums in another order) and terminations exactly, through terminations
    and auto-resets (gymnasium is then re-synced to the new episode's state)."""
    env = make(name, 3, dtype=torch.float64)
    references = [gymnasium.make(GYMNASIUM_IDS[name]) for _ in range(env.num_envs)]
    rng = np.random.default_rng(0)
    model = env.model
    qpos = model.qpos0 + rng.uniform(-0.1, 0.1, (env.num_envs, model.nq))
    qvel = rng.normal(0.0, 0.1, (env.num_envs, model.nv))
    observation = env.reset_to(qpos, qvel)["observation"].numpy()
    for i, reference in enumerate(references):
        reference.reset(seed=i)
        reference.unwrapped.set_state(qpos[i], qvel[i])
        np.testing.assert_array_equal(observation[i], reference.unwrapped._get_obs())

    terminations, contact_seen = 0, False
    for action in random_actions(env, rng, steps=100):
        out = env.step(torch.from_numpy(action))
        for i, reference in enumerate(references):
            expected_obs, expected_reward, terminated, truncated, _ = reference.step(action[i].astype(np.float64))
            np.testing.assert_array_equal(out["final_observation"][i].numpy(), expected_obs)
            assert out["reward"][i].item() == pytest.approx(expected_reward, rel=0, abs=1e-6)
            assert (bool(out["terminated"][i]), bool(out["truncated"][i])) == (terminated, truncated and not terminated)
            if name in CONTACT_FORCE_OBSERVATION:
                contact_seen |= bool(np.any(expected_obs[CONTACT_FORCE_OBSERVATION[name]] != 0))
            if terminated:
                terminations += 1
                reference.reset()
                reference.unwrapped.set_state(env.qpos[i], env.qvel[i])
                np.testing.assert_array_equal(out["observation"][i].numpy(), reference.unwrapped._get_obs())
    assert (terminations > 0) == (name != "halfcheetah"), "the rollout should exercise the termination rule"
    assert contact_seen or name not in CONTACT_FORCE_OBSERVATION, "contact forces were never compared"


def reset_deviation(qpos, qvel, qpos0, scale):
    """(max |deviation|, std) of qpos and qvel noise, in units of the noise scale."""
    return {
        part: (np.abs(dev).max() / scale, dev.std() / scale) for part, dev in (("qpos", qpos - qpos0), ("qvel", qvel))
    }


@pytest.mark.parametrize("name", GYMNASIUM_IDS)
def test_reset_noise_matches_gymnasium(name):
    """Same support (uniform within [-scale, scale] or unbounded normal) and std within 10%."""
    env = make(name, 64)
    qpos, qvel = [], []
    for _ in range(8):
        env.reset()
        qpos.append(env.qpos), qvel.append(env.qvel)
    ours = reset_deviation(np.concatenate(qpos), np.concatenate(qvel), env.model.qpos0, env.reset_noise_scale)
    reference = gymnasium.make(GYMNASIUM_IDS[name]).unwrapped
    qpos, qvel = [], []
    for seed in range(256):
        reference.reset(seed=seed)
        qpos.append(reference.data.qpos.copy()), qvel.append(reference.data.qvel.copy())
    theirs = reset_deviation(np.stack(qpos), np.stack(qvel), reference.init_qpos, env.reset_noise_scale)
    for part in ("qpos", "qvel"):
        (our_max, our_std), (their_max, their_std) = ours[part], theirs[part]
        assert (our_max <= 1.0) == (their_max <= 1.0), f"{part}: bounded support differs"
        assert our_std == pytest.approx(their_std, rel=0.1), f"{part}: std differs"


def test_outputs_follow_the_batched_env_contract():
    for name, gym_id in GYMNASIUM_IDS.items():
        env = make(name, 2)
        spec = gymnasium.make(gym_id)
        assert (env.observation_dim, env.action_dim) == (spec.observation_space.shape[0], spec.action_space.shape[0])
        assert env.max_episode_steps == spec.spec.max_episode_steps == 1000
        assert env.critic_observation_dim is None
        env.reset()
        out = env.step(torch.zeros(2, env.action_dim))
        assert out["observation"].shape == out["final_observation"].shape == (2, env.observation_dim)
        assert out["observation"].dtype == out["reward"].dtype == torch.float32
        assert out["terminated"].dtype == out["truncated"].dtype == torch.bool


def test_truncation_resets_and_keeps_the_final_observation():
    env = make("halfcheetah", 4, max_episode_steps=5)
    unlimited = make("halfcheetah", 4)
    env.reset(), unlimited.reset()
    for action in random_actions(env, np.random.default_rng(1), steps=5):
        out, expected = env.step(torch.from_numpy(action)), unlimited.step(torch.from_numpy(action))
    assert out["truncated"].all() and not out["terminated"].any()
    assert torch.equal(out["final_observation"], expected["observation"])
    qpos_noise = np.abs(env.qpos - env.model.qpos0).max()
    assert qpos_noise <= env.reset_noise_scale, "the new episode starts from a reset state"
    fresh = np.concatenate([env.qpos[:, 1:], env.qvel], axis=1)
    assert torch.equal(out["observation"], torch.from_numpy(fresh).float())
    truncations = [env.step(torch.zeros(4, env.action_dim))["truncated"].all().item() for _ in range(5)]
    assert truncations == [False] * 4 + [True], "the step counter restarts with the episode"


def test_termination_resets_only_the_unhealthy_env():
    env = make("hopper", 4)
    qpos = np.tile(env.model.qpos0, (4, 1))
    qpos[1, 2] = 0.5  # torso angle beyond the healthy (-0.2, 0.2)
    env.reset_to(qpos, np.zeros((4, env.model.nv)))
    out = env.step(torch.zeros(4, env.action_dim))
    assert out["terminated"].tolist() == [False, True, False, False] and not out["truncated"].any()
    final, observation = out["final_observation"], out["observation"]
    assert final[1, 1] > 0.4 and abs(observation[1, 1]) <= env.reset_noise_scale  # obs[1]: torso angle
    assert torch.equal(final[[0, 2, 3]], observation[[0, 2, 3]])


def rollout(env, actions):
    return [env.step(torch.from_numpy(action)) for action in actions]


@pytest.mark.parametrize("name", ["hopper", "ant"])
def test_state_dict_resumes_bit_identically(name):
    """Hopper: a plain batch; Ant: a persistent one whose reward reads derived positions. Episodes of
    6 steps make the resumed stretch include auto-resets, which draw from the saved RNG."""
    env = make(name, 4, seed=3, max_episode_steps=6)
    actions = random_actions(env, np.random.default_rng(2), steps=14)
    env.reset()
    rollout(env, actions[:4])
    state = env.state_dict()
    expected = rollout(env, actions[4:])
    for resumed in (env, make(name, 4, seed=99, max_episode_steps=6)):
        resumed.load_state_dict(state)
        for got, want in zip(rollout(resumed, actions[4:]), expected):
            assert all(torch.equal(got[key], want[key]) for key in want.keys())


def test_seed_determines_the_rollout():
    actions = random_actions(make("halfcheetah", 4), np.random.default_rng(3), steps=10)

    def observations(seed):
        env = make("halfcheetah", 4, seed=seed)
        return torch.stack([env.reset()["observation"]] + [out["observation"] for out in rollout(env, actions)])

    assert torch.equal(observations(0), observations(0))
    assert not torch.equal(observations(0), observations(1))


def test_bad_actions_and_unstable_physics_raise_naming_env_and_sims():
    env = make("halfcheetah", 3)
    env.reset()
    action = torch.zeros(3, env.action_dim)
    action[1, 0] = float("nan")
    with pytest.raises(ValueError, match="HalfCheetah.step: action contains non-finite values"):
        env.step(action)
    qvel = np.zeros((3, env.model.nv))
    qvel[2, 0] = np.inf
    env.reset_to(env.model.qpos0, qvel)
    with pytest.raises(FloatingPointError, match=r"HalfCheetah: MuJoCo raised mjWARN_BADQVEL in simulations \[2\]"):
        env.step(torch.zeros(3, env.action_dim))


def model_bytes(model):
    """The whole compiled model (every array, option and statistic) as MJB bytes."""
    buffer = np.zeros(mujoco.mj_sizeModel(model), np.uint8)
    mujoco.mj_saveModel(model, None, buffer)
    return buffer.tobytes()


@pytest.mark.parametrize("name", GYMNASIUM_IDS)
def test_model_compiles_without_the_settotalmass_warning_and_unchanged(name, capfd):
    """MuJoCo's C-level deprecation warning for ``<compiler settotalmass>`` (half_cheetah.xml) is no
    longer printed, and the model is bit for bit the one ``MjModel.from_xml_path`` compiles with it."""
    capfd.readouterr()
    env = make(name, 2)
    built = capfd.readouterr()
    assert "settotalmass" not in built.out + built.err
    path = gymnasium_asset(env.xml_file)
    reference = mujoco.MjModel.from_xml_path(path)
    sets_total_mass = mujoco.MjSpec.from_file(path).compiler.settotalmass > 0
    assert ("settotalmass" in capfd.readouterr().err) == sets_total_mass, "the capture sees the warning"
    assert sets_total_mass == (name == "halfcheetah")
    np.testing.assert_array_equal(env.model.body_mass, reference.body_mass)
    np.testing.assert_array_equal(env.model.body_inertia, reference.body_inertia)
    assert (env.model.stat.meanmass, env.model.stat.meaninertia) == (
        reference.stat.meanmass,
        reference.stat.meaninertia,
    )
    assert model_bytes(env.model) == model_bytes(reference)


def test_gym_adapter_builds_half_cheetah_without_the_settotalmass_warning(capfd):
    capfd.readouterr()
    env = GymnasiumBatchedEnv("HalfCheetah-v5", 2)
    built = capfd.readouterr()
    assert "settotalmass" not in built.out + built.err
    assert mujoco.get_mju_user_warning() is None, "MuJoCo's default warning handler is back"
    reference = mujoco.MjModel.from_xml_path(gymnasium_asset("half_cheetah.xml"))
    assert model_bytes(env._vector_env.envs[0].unwrapped.model) == model_bytes(reference)
    env.close()


SETTOTALMASS_XML = """
<mujoco>
  <compiler settotalmass="2"/>
  <worldbody><body><freejoint/><geom size="0.1"/></body></worldbody>
</mujoco>
"""


def warn_bad_qpos():
    """Make MuJoCo print an unrelated warning (non-finite qpos)."""
    model = mujoco.MjModel.from_xml_string(SETTOTALMASS_XML.replace('settotalmass="2"', ""))
    data = mujoco.MjData(model)
    data.qpos[0] = np.nan
    mujoco.mj_checkPos(model, data)


def test_settotalmass_filter_lets_other_mujoco_warnings_through(capfd):
    """The gym adapter's filter drops only the settotalmass message, only while active; other MuJoCo
    warnings still reach stderr, or a handler installed before."""
    capfd.readouterr()
    with settotalmass_deprecation_silenced():
        mujoco.MjModel.from_xml_string(SETTOTALMASS_XML)
        warn_bad_qpos()
    err = capfd.readouterr().err
    assert "settotalmass" not in err and "Nan, Inf or huge value in QPOS" in err

    mujoco.MjModel.from_xml_string(SETTOTALMASS_XML)
    assert "settotalmass" in capfd.readouterr().err, "the filter ends with the block"

    received = []
    record = received.append
    mujoco.set_mju_user_warning(record)
    try:
        with settotalmass_deprecation_silenced():
            mujoco.MjModel.from_xml_string(SETTOTALMASS_XML)
            warn_bad_qpos()
        assert mujoco.get_mju_user_warning() is record
    finally:
        mujoco.set_mju_user_warning(None)
    assert len(received) == 1 and "Nan, Inf or huge value in QPOS" in received[0]
