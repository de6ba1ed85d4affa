"""Steering α (method=steer): a PI controller with anti-windup that sets the NT-Xent weight so
that the measured ratio H(R) / I_excess(R;Z) follows a setpoint path.

Design notes: docs/steering.md, "Design notes: steering".
"""

from __future__ import annotations

import math

from .setpoints import SetpointPath

DIRECTIONS = ("1", "-1", "auto")
WARMUP, IDENTIFY, CONTROL = "warmup", "identify", "control"


def _clip(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


class SteeringController:
    """The α of method=steer. Call `update` at each control step (a dynamics measurement) with
    the measured ratio; `alpha` is the weight in force until the next control step."""

    def __init__(
        self,
        setpoint: SetpointPath,
        kp: float = 0.4,
        ki: float = 0.2,
        kd: float = 0.0,
        alpha_init: float = 0.5,
        alpha_min: float = 0.0,
        alpha_max: float = 1.0,
        rate_limit: float = 0.1,
        warmup_steps: int = 0,
        direction: str | int = "1",
        identify_steps: int = 2,
        identify_delta: float = 0.2,
        anti_windup: bool = True,
    ) -> None:
        direction = str(direction)
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        if min(kp, ki, kd) < 0:
            raise ValueError(f"gains must be >= 0, got kp={kp}, ki={ki}, kd={kd}")
        if not 0 <= alpha_min <= alpha_init <= alpha_max <= 1:
            raise ValueError(
                f"need 0 <= alpha_min <= alpha_init <= alpha_max <= 1, got {alpha_min}, {alpha_init}, {alpha_max}"
            )
        if rate_limit <= 0 or identify_steps < 1 or identify_delta <= 0:
            raise ValueError("rate_limit, identify_steps and identify_delta must be > 0")
        self.setpoint = setpoint
        self.kp, self.ki, self.kd = float(kp), float(ki), float(kd)
        self.alpha_init, self.alpha_min, self.alpha_max = float(alpha_init), float(alpha_min), float(alpha_max)
        self.rate_limit, self.warmup_steps = float(rate_limit), int(warmup_steps)
        self.identify_steps, self.identify_delta = int(identify_steps), float(identify_delta)
        self.anti_windup = bool(anti_windup)
        # State (all of it in state_dict): 0 = not identified yet (direction="auto").
        self.direction = 0 if direction == "auto" else int(direction)
        self.alpha = self.alpha_init
        self.integral = 0.0
        self.previous_error = math.nan
        self.levels_applied = 0  # identification levels set so far
        self.samples: list[tuple[float, float]] = []  # (α in force, measured ratio) while identifying
        self.last_setpoint, self.last_error = math.nan, math.nan

    def phase(self, step: int) -> str:
        if step < self.warmup_steps:
            return WARMUP
        return IDENTIFY if self.direction == 0 else CONTROL

    def update(self, step: int, progress: float, measured: float) -> float:
        """One control step at optimizer step ``step`` (training ``progress`` in [0, 1]) with the
        ratio just measured; returns the α in force from this step on."""
        setpoint = self.setpoint(progress)
        finite = math.isfinite(measured)
        error = (setpoint - measured) / setpoint if finite else math.nan
        self.last_setpoint, self.last_error = setpoint, error
        phase = self.phase(step)
        if phase == IDENTIFY:
            if self._identify(measured):
                return self.alpha
        if phase == WARMUP or not finite:
            return self.alpha  # held: nothing integrates
        self._control(error)
        return self.alpha

    def _identify(self, measured: float) -> bool:
        """Advance the identification; True while it still holds α (False: d is now known)."""
        # Credit the measurement to the level just held, from the second half of each block on:
        # the first half is the plant settling to the new level.
        settled = (self.levels_applied - 1) % self.identify_steps >= self.identify_steps // 2
        if self.levels_applied > 0 and settled and math.isfinite(measured):
            self.samples.append((self.alpha, measured))
        if self.levels_applied < 4 * self.identify_steps:
            block = self.levels_applied // self.identify_steps  # A B B A
            offset = self.identify_delta if block in (0, 3) else -self.identify_delta
            self.alpha = _clip(self.alpha_init + offset, self.alpha_min, self.alpha_max)
            self.levels_applied += 1
            return True
        self.direction = self.identified_direction()
        return False

    def identified_direction(self) -> int:
        """The sign of mean(ratio | high α) - mean(ratio | low α); +1 when there is no difference."""
        high = [y for a, y in self.samples if a > self.alpha_init]
        low = [y for a, y in self.samples if a < self.alpha_init]
        if not high or not low:
            return 1
        difference = sum(high) / len(high) - sum(low) / len(low)
        return -1 if difference < 0 else 1

    def _command(self, error: float, integral: float, derivative: float) -> float:
        return self.alpha_init + self.direction * (self.kp * error + self.ki * integral + self.kd * derivative)

    def _control(self, error: float) -> None:
        derivative = error - self.previous_error if math.isfinite(self.previous_error) else 0.0
        # What α can reach this control step: the clip and the rate limit together.
        upper = min(self.alpha_max, self.alpha + self.rate_limit)
        lower = max(self.alpha_min, self.alpha - self.rate_limit)
        integral = self.integral + error
        command = self._command(error, integral, derivative)
        if self.anti_windup and not lower <= command <= upper:
            integral = self._integral_at_limit(upper if command > upper else lower, error, integral, derivative)
            command = self._command(error, integral, derivative)
        self.integral, self.previous_error = integral, error
        self.alpha = _clip(command, lower, upper)

    def _integral_at_limit(self, limit: float, error: float, integral: float, derivative: float) -> float:
        """Conditional integration: the integral moves only as far as the point where the
        command meets ``limit``, and never moves away from that point; integration away from the
        limit (the error changed sign) is left whole."""
        if self.ki == 0:
            return self.integral
        at_limit = (self.direction * (limit - self.alpha_init) - self.kp * error - self.kd * derivative) / self.ki
        return _clip(at_limit, min(self.integral, integral), max(self.integral, integral))

    def logged(self) -> dict[str, float]:
        """The values of the last control step, for the history row."""
        return {
            "steer/setpoint": self.last_setpoint,
            "steer/error": self.last_error,
            "steer/integral": self.integral,
            "steer/direction": float(self.direction),
        }

    def state_dict(self) -> dict:
        return {
            "setpoint": self.setpoint.state_dict(),
            "direction": self.direction,
            "alpha": self.alpha,
            "integral": self.integral,
            "previous_error": self.previous_error,
            "levels_applied": self.levels_applied,
            "samples": [list(s) for s in self.samples],
            "last_setpoint": self.last_setpoint,
            "last_error": self.last_error,
        }

    def load_state_dict(self, state: dict) -> None:
        # The path saved with the run: a resumed run follows the same one even if the target
        # run's files changed since.
        self.setpoint = SetpointPath.from_state(state["setpoint"])
        self.direction = int(state["direction"])
        self.alpha, self.integral = float(state["alpha"]), float(state["integral"])
        self.previous_error = float(state["previous_error"])
        self.levels_applied = int(state["levels_applied"])
        self.samples = [(float(a), float(y)) for a, y in state["samples"]]
        self.last_setpoint, self.last_error = float(state["last_setpoint"]), float(state["last_error"])
