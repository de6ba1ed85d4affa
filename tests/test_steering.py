"""method=steer: the PI controller on α (on a synthetic plant), its setpoint paths, its config
and its place in the weight controller. The trainer's SIGKILL-resume test covers a real run."""

import json
import math
import random
import statistics
from itertools import pairwise

import pytest
from adadim.training.config import ConfigError, load_config
from adadim.training.controller import WeightController
from adadim.training.setpoints import SetpointPath, TargetRunError, read_run_path, rolling_median
from adadim.training.steering import SteeringController
from adadim.training.trainer import train
from trainer_helpers import tiny_overrides


class FirstOrderPlant:
    """The ratio as a first-order system of α: y' = (offset + gain·α_delayed + drift·t - y) / tau,
    advanced one control interval at a time, measured with relative Gaussian noise. ``delay``
    control intervals pass before α acts (the trainer adds one of its own: a measurement sees
    the α of the interval before it)."""

    def __init__(self, gain=2.0, offset=2.0, tau=2.0, delay=2, noise=0.01, alpha=0.5, drift=0.0, seed=0):
        self.gain, self.offset, self.tau, self.noise, self.drift = gain, offset, tau, noise, drift
        self.rng = random.Random(seed)
        self.pending = [alpha] * delay
        self.y = offset + gain * alpha
        self.t = 0

    def measure(self) -> float:
        return self.y * (1.0 + self.noise * self.rng.gauss(0.0, 1.0))

    def advance(self, alpha: float) -> None:
        self.pending.append(alpha)
        acting = self.pending.pop(0)
        self.t += 1
        settled = self.offset + self.drift * self.t + self.gain * acting
        self.y = settled + (self.y - settled) * math.exp(-1.0 / self.tau)


def close_loop(controller, plant, steps, start=0):
    """(measured, α, error) per control step; progress runs 0..1 over ``steps``."""
    out = []
    for k in range(start, start + steps):
        measured = plant.measure()
        alpha = controller.update(k, k / max(1, steps - 1), measured)
        out.append((measured, alpha, controller.last_error))
        plant.advance(alpha)
    return out


def mean_abs_error(trace) -> float:
    return statistics.mean(abs(e) for _, _, e in trace)


# ---- tracking --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_tracks_a_step_setpoint_within_five_percent(seed):
    # α = 0.5 holds the plant at 3.0; the setpoint 3.4 needs α = 0.7.
    controller = SteeringController(SetpointPath.constant(3.4))
    trace = close_loop(controller, FirstOrderPlant(seed=seed), 60)
    assert abs(trace[0][2]) > 0.08  # it starts well off the setpoint (11.8 %, less noise)
    assert mean_abs_error(trace[40:]) < 0.05  # measured: 0.6-1.1 % (noise is 1 %)
    assert statistics.mean(a for _, a, _ in trace[40:]) == pytest.approx(0.7, abs=0.03)


def test_tracks_a_ramp_with_the_lag_a_pi_loop_predicts():
    # The setpoint climbs 2.6 -> 3.8 over 100 control steps (α* 0.3 -> 0.9). A PI loop around a
    # plant without integrator follows a ramp with a constant lag: (ramp per step / setpoint) /
    # (ki · relative plant gain) = (0.012 / 3.2) / (0.2 · 2 / 3.2) = 3 %.
    controller = SteeringController(SetpointPath("linear", 2.6, 3.8), alpha_init=0.3)
    trace = close_loop(controller, FirstOrderPlant(alpha=0.3), 100)
    assert mean_abs_error(trace[30:]) < 0.04  # measured: 2.9 %
    assert statistics.mean(e for _, _, e in trace[30:]) > 0  # a lag: the ratio stays below the rising path


def test_direction_minus_one_tracks_a_plant_where_more_alpha_lowers_the_ratio():
    plant = FirstOrderPlant(gain=-2.0, offset=4.0)  # 3.0 at α = 0.5; 2.6 needs α = 0.7
    trace = close_loop(SteeringController(SetpointPath.constant(2.6), direction=-1), plant, 60)
    assert mean_abs_error(trace[40:]) < 0.05
    # The wrong sign drives α to the clip and the error never closes.
    wrong = close_loop(SteeringController(SetpointPath.constant(2.6), direction=1), FirstOrderPlant(-2.0, 4.0), 60)
    assert mean_abs_error(wrong[40:]) > 0.1 and wrong[-1][1] == 0.0


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("seed", range(3))
def test_auto_direction_identifies_the_sign_despite_a_drift(sign, seed):
    # The ratio drifts down by 0.03 per control step (training moves it on its own), more than
    # the probe's effect builds up in one step; the high-low-low-high probe cancels a linear drift.
    # One control step of dead time: within what identify_steps=2 allows (⌊m/2⌋ = 1).
    plant = FirstOrderPlant(gain=2.0 * sign, offset=3.0 - sign, delay=1, drift=-0.03, seed=seed)
    controller = SteeringController(SetpointPath.constant(3.0), direction="auto", warmup_steps=2)
    trace = close_loop(controller, plant, 12)
    alphas = [a for _, a, _ in trace]
    assert alphas[:2] == [0.5, 0.5]  # warm-up
    assert alphas[2:10] == pytest.approx([0.7, 0.7, 0.3, 0.3, 0.3, 0.3, 0.7, 0.7])  # the probe
    assert controller.direction == sign
    assert controller.logged()["steer/direction"] == sign


def test_auto_direction_flips_when_the_dead_time_exceeds_half_a_block():
    """The documented limit: two control steps of dead time with identify_steps=2 credit the
    response to the wrong level every time; four steps per block are needed."""
    for steps, wanted in ((2, -1), (4, 1)):
        found = []
        for seed in range(5):
            plant = FirstOrderPlant(gain=2.0, offset=2.0, delay=2, tau=1.0, drift=-0.03, seed=seed)
            controller = SteeringController(SetpointPath.constant(3.0), direction="auto", identify_steps=steps)
            close_loop(controller, plant, 4 * steps + 1)
            found.append(controller.direction)
        assert found == [wanted] * 5


def test_auto_direction_reports_zero_while_identifying_and_falls_back_to_one_without_data():
    controller = SteeringController(SetpointPath.constant(3.0), direction="auto", identify_steps=1)
    for k in range(4):
        controller.update(k, 0.0, math.nan)
        assert controller.logged()["steer/direction"] == 0.0
    controller.update(4, 0.0, math.nan)
    assert controller.direction == 1


# ---- limits ------------------------------------------------------------------------------------


def saturate_then_release(anti_windup: bool) -> tuple[list[float], int]:
    """40 control steps at an unreachable setpoint (6; the plant tops out at 4), then a reachable
    one (3). Returns (α during the unreachable part, control steps until α leaves the clip)."""
    controller = SteeringController(SetpointPath.constant(6.0), anti_windup=anti_windup)
    plant = FirstOrderPlant()
    pinned = [a for _, a, _ in close_loop(controller, plant, 40)]
    controller.setpoint = SetpointPath.constant(3.0)
    for k, (_, alpha, _) in enumerate(close_loop(controller, plant, 80, start=40), start=1):
        if alpha <= controller.alpha_max - controller.rate_limit:
            return pinned, k
    return pinned, 81


def test_after_a_long_saturation_alpha_leaves_the_clip_at_once():
    pinned, recovery = saturate_then_release(anti_windup=True)
    assert pinned[-30:] == [1.0] * 30  # α sat at the clip
    assert recovery <= 2  # measured: 1 control step


def test_without_anti_windup_the_same_scenario_winds_up():
    pinned, recovery = saturate_then_release(anti_windup=False)
    assert pinned[-30:] == [1.0] * 30
    assert recovery > 10  # measured: 34 control steps


def test_the_integral_stays_bounded_at_the_clip():
    controller = SteeringController(SetpointPath.constant(6.0))
    close_loop(controller, FirstOrderPlant(), 200)
    # Where α_cmd meets α_max: α_init + kp·e + ki·S = 1 with e ≈ 1/3.
    assert controller.integral == pytest.approx((1.0 - 0.5 - 0.4 / 3) / 0.2, rel=0.05)


def test_rate_limit_and_clip_hold_at_every_control_step():
    controller = SteeringController(SetpointPath("linear", 6.0, 0.5), rate_limit=0.05, alpha_min=0.1, alpha_max=0.8)
    trace = close_loop(controller, FirstOrderPlant(noise=0.05), 80)
    alphas = [0.5] + [a for _, a, _ in trace]
    steps = [abs(b - a) for a, b in pairwise(alphas)]
    assert max(steps) <= 0.05 + 1e-12
    assert max(steps) == pytest.approx(0.05)  # the limit was reached, so the check means something
    assert min(alphas) == pytest.approx(0.1) and max(alphas) == pytest.approx(0.8)


def test_warmup_holds_alpha_and_integrates_nothing():
    controller = SteeringController(SetpointPath.constant(6.0), warmup_steps=100, alpha_init=0.35)
    for step in range(0, 100, 10):
        assert controller.update(step, step / 200, 3.0) == 0.35
        assert controller.integral == 0.0
        assert controller.logged()["steer/error"] == pytest.approx(0.5)  # still reported
    assert controller.update(100, 0.5, 3.0) > 0.35  # control starts at warmup_steps


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_ratio_holds_alpha_and_does_not_integrate(bad):
    controller = SteeringController(SetpointPath.constant(3.4))
    close_loop(controller, FirstOrderPlant(), 5)
    alpha, integral, previous = controller.alpha, controller.integral, controller.previous_error
    for k in range(5, 15):
        assert controller.update(k, 0.5, bad) == alpha
    assert controller.integral == integral and controller.previous_error == previous
    logged = controller.logged()
    assert math.isnan(logged["steer/error"]) and logged["steer/setpoint"] == 3.4


def test_state_dict_round_trip_reproduces_the_future_exactly():
    path = SetpointPath("run", 3.0, 2.0, ((0.0, 3.0), (0.5, 2.5), (1.0, 2.0)))
    settings = {"direction": "auto", "warmup_steps": 2, "identify_steps": 2, "kd": 0.1}
    first = SteeringController(path, **settings)
    plant = FirstOrderPlant(noise=0.03, seed=5)
    measurements = [plant.measure() * (1 + 0.01 * k) for k in range(40)]
    measurements[12] = math.nan
    for k in range(7):  # stop in the middle of the identification
        first.update(k, k / 39, measurements[k])
    state = json.loads(json.dumps(first.state_dict(), allow_nan=True))  # plain data, as a checkpoint holds
    second = SteeringController(SetpointPath.constant(1.0), **settings)  # even the path comes from the state
    second.load_state_dict(state)
    for k in range(7, 40):
        assert second.update(k, k / 39, measurements[k]) == first.update(k, k / 39, measurements[k])
        assert second.logged() == pytest.approx(first.logged(), nan_ok=True)
    assert first.direction != 0  # the identification finished in the replayed part


# ---- setpoint paths ------------------------------------------------------------------------------


def test_constant_linear_and_cosine_paths():
    assert SetpointPath.constant(2.5)(0.7) == 2.5
    linear = SetpointPath("linear", 3.0, 2.0)
    assert [linear(p) for p in (0.0, 0.25, 1.0, 1.5)] == pytest.approx([3.0, 2.75, 2.0, 2.0])
    cosine = SetpointPath("cosine", 3.0, 2.0)
    assert cosine(0.5) == pytest.approx(2.5) and cosine(0.25) == pytest.approx(3.0 - 0.5 * (1 - math.cos(math.pi / 4)))
    with pytest.raises(ValueError, match="unknown setpoint path"):
        SetpointPath("exponential", 1.0, 2.0)


def write_history(run_dir, rows, state="finished"):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if state is not None:
        (run_dir / "summary.json").write_text(json.dumps({"state": state}))
    return run_dir


def trainer_rows(ratios: dict[int, float | None], last: int) -> list[dict]:
    """Rows as the trainer writes them: every step, the ratio only where measured (null: NaN)."""
    rows = []
    for step in range(last + 1):
        row = {"trainer/step": step, "train/loss": 1.0, "adadim/alpha": 0.5}
        if step in ratios:
            row["dynamics/ratio_H_I"] = ratios[step]
            row["dynamics/H_R"] = 5.0
        rows.append(row)
    return rows


def test_run_path_is_the_smoothed_ratio_against_progress(tmp_path):
    # Measured every 10 steps of a 101-step run; a spike at step 40 and a NaN at step 60.
    ratios = {0: 6.0, 10: 4.0, 20: 3.5, 30: 3.0, 40: 9.0, 50: 2.6, 60: None, 70: 2.4, 80: 2.3, 90: 2.2, 100: 2.1}
    run = write_history(tmp_path / "earlier", trainer_rows(ratios, 100))
    path = read_run_path(run, smooth=3)
    finite = [(s, v) for s, v in ratios.items() if v is not None]
    assert [p for p, _ in path.knots] == pytest.approx([s / 100 for s, _ in finite])  # NaN row skipped
    assert dict(path.knots)[0.4] == pytest.approx(3.0)  # the spike is gone: median(3.0, 9.0, 2.6)
    assert path(0.0) == pytest.approx(5.0)  # the ends use a shrunk window: median(6, 4)
    assert path(0.75) == pytest.approx((2.4 + 2.3) / 2)  # linear between knots
    assert path(1.0) == pytest.approx(2.15)
    # Without smoothing the path is the measurements themselves; the history file itself works too.
    raw = read_run_path(run / "history.jsonl", smooth=1)
    assert [v for _, v in raw.knots] == [v for _, v in finite]


def test_rolling_median_window_shrinks_at_the_ends():
    assert rolling_median([1.0, 5.0, 2.0, 8.0], 3) == [3.0, 2.0, 5.0, 5.0]


def test_run_path_refuses_missing_corrupt_unfinished_and_ratio_less_runs(tmp_path):
    with pytest.raises(TargetRunError, match=r"steer.target_run: .*nowhere.*not found"):
        read_run_path(tmp_path / "nowhere")
    corrupt = write_history(tmp_path / "corrupt", trainer_rows({0: 3.0}, 3))
    lines = (corrupt / "history.jsonl").read_text().splitlines()
    (corrupt / "history.jsonl").write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    with pytest.raises(TargetRunError, match=r"corrupt.*history.jsonl is corrupt: line 2 is not valid JSON"):
        read_run_path(corrupt)
    running = write_history(tmp_path / "running", trainer_rows({0: 3.0}, 3), state="running")
    with pytest.raises(TargetRunError, match=r"running has not finished"):
        read_run_path(running)
    empty = write_history(tmp_path / "empty", trainer_rows({0: None, 2: None}, 3))
    with pytest.raises(TargetRunError, match=r"empty.*holds no finite dynamics/ratio_H_I"):
        read_run_path(empty)
    bare = write_history(tmp_path / "bare", trainer_rows({0: 3.0, 3: 2.0}, 3), state=None)
    # no summary: a named history file is followed as it stands; a run directory is refused
    assert read_run_path(bare / "history.jsonl").knots == ((0.0, 2.5), (1.0, 2.5))
    with pytest.raises(TargetRunError, match=r"bare has no summary.json, so whether it finished is unknown"):
        read_run_path(bare)


def test_the_trainer_refuses_a_bad_target_run_with_a_config_error(tmp_path):
    missing = tmp_path / "no-such-run"
    overrides = tiny_overrides(tmp_path, "steered", method="steer", **{"steer.target": "run"})
    cfg = load_config(None, [*overrides, f"steer.target_run={missing}"])
    with pytest.raises(ConfigError, match=r"steer.target_run: .*no-such-run.*not found"):
        train(cfg)


# ---- config and the weight controller ------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["method=steer", "steer.target=exponential"], "steer.target must be one of constant, linear, cosine, run"),
        (["method=steer", "steer.target=run"], "steer.target_run is required with steer.target=run"),
        (["method=steer", "steer.kp=-0.1"], "steer.kp must be >= 0"),
        (["method=steer", "steer.ki=-1"], "steer.ki must be >= 0"),
        (["method=steer", "steer.kp=0", "steer.ki=0"], "cannot both be 0"),
        (["method=steer", "steer.value=0"], "steer.value must be > 0"),
        (["method=steer", "steer.target=linear", "steer.end=-1"], "steer.end must be > 0"),
        (["method=steer", "steer.alpha_max=1.5"], r"steer.alpha_max must be in \[0, 1\]"),
        (
            ["method=steer", "steer.alpha_init=0.9", "steer.alpha_max=0.8"],
            "alpha_min <= steer.alpha_init <= steer.alpha_max",
        ),
        (["method=steer", "steer.rate_limit=0"], r"steer.rate_limit must be in \(0, 1\]"),
        (["method=steer", "steer.warmup_steps=-1"], "steer.warmup_steps must be >= 0"),
        (["method=steer", "steer.direction=up"], "steer.direction must be one of 1, -1, auto"),
        (["method=steer", "steer.direction=auto", "steer.identify_steps=0"], "steer.identify_steps must be >= 1"),
        (["method=steer", "steer.target_run=runs/x", "steer.smooth=0"], "steer.smooth must be >= 1"),
        (
            ["method=steer", "steer.direction=auto", "steer.alpha_init=0", "steer.alpha_min=0"],
            "direction=auto needs steer.alpha_min <",
        ),
        (["method=steer", "dynamics.source=batch"], "method=steer needs dynamics.source=probe"),
        (["method=steer", "dynamics.every=0"], "method=steer needs dynamics.every >= 1"),
        (["method=steer", "dynamics.metrics=[entropy]"], "method=steer needs 'mutual_information'"),
    ],
)
def test_config_refuses_bad_steer_settings(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_config_accepts_each_direction_and_target():
    for direction in ("1", "-1", "auto"):
        assert load_config(None, ["method=steer", f"steer.direction={direction}"]).steer.direction == direction
    cfg = load_config(None, ["method=steer", "steer.target=run", "steer.target_run=runs/earlier"])
    assert cfg.steer.target_run == "runs/earlier"  # read when the run is set up, not here


def test_weight_controller_moves_alpha_only_at_control_steps():
    steering = SteeringController(SetpointPath.constant(4.0), rate_limit=0.2)
    controller = WeightController("steer", 100, gamma=0.5, steering=steering)
    assert controller.step(0, ratio=3.0).alpha > 0.5  # below the setpoint: more NT-Xent (direction 1)
    held = controller.step(0).alpha
    for step in range(1, 10):
        weights = controller.step(step)  # no measurement: α holds
        assert (weights.alpha, weights.beta) == (held, pytest.approx(0.5 * held))
    assert "steering" in controller.state_dict()
    with pytest.raises(ValueError, match="needs a steering controller"):
        WeightController("steer", 100)
