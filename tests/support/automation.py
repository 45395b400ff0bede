"""Drive the real sensors and schedules in process and launch what they ask for, as the daemon would.

Run keys are deduplicated the way the daemon does (a key already launched is skipped), and every
launched run is kept with the request that caused it, so scenario tests can assert on both.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import dagster as dg


@dataclass
class Launched:
    sensor: str
    request: dg.RunRequest
    result: dg.ExecuteInProcessResult

    @property
    def success(self) -> bool:
        return self.result.success

    def checks(self) -> dict[str, object]:
        return {
            f"{e.event_specific_data.asset_key.to_user_string()}:{e.event_specific_data.check_name}": e.event_specific_data
            for e in self.result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        }

    def failures(self) -> list[str]:
        """Failed steps with the first line of their error (for assertion messages)."""
        out = []
        for e in self.result.all_events:
            if e.event_type_value != "STEP_FAILURE":
                continue
            error = e.event_specific_data.error
            while error.cause is not None:  # the user code's own error, not Dagster's wrapper
                error = error.cause
            out.append(f"{e.step_key}: {error.message.strip().splitlines()[-1]}")
        return out

    def executed_steps(self) -> set[str]:
        return {e.step_key for e in self.result.all_events if e.event_type_value == "STEP_SUCCESS"}


@dataclass
class Automation:
    """The definitions (built from the current environment), an instance, and sensor cursors."""

    instance: dg.DagsterInstance = field(default_factory=dg.DagsterInstance.ephemeral)
    cursors: dict[str, str | None] = field(default_factory=dict)
    launched: list[Launched] = field(default_factory=list)
    # Sensors are named per use case (``fraud_landing_sensor``): a bare name means this one's.
    usecase: str = "fraud"

    def __post_init__(self) -> None:
        from orchestration.definitions import build_definitions

        warnings.filterwarnings("ignore")
        self.defs = build_definitions()
        self._keys: set[str] = set()

    def tick(self, sensor_name: str):
        """Evaluate one sensor tick; the cursor moves as the daemon would move it."""
        sensor_name = self.scoped(sensor_name)
        sensor = self.defs.get_sensor_def(sensor_name)
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursors.get(sensor_name),
            definitions=self.defs,
            resources=self.defs.resources,
        )
        data = sensor.evaluate_tick(context)
        self.cursors[sensor_name] = data.cursor
        return data

    def scoped(self, name: str) -> str:
        """``name`` of this use case's sensor or job (``landing_sensor`` -> ``fraud_landing_sensor``)."""
        return name if name.startswith(f"{self.usecase}_") else f"{self.usecase}_{name}"

    def run(self, sensor_name: str, request: dg.RunRequest) -> Launched | None:
        sensor_name = self.scoped(sensor_name)
        if request.run_key and request.run_key in self._keys:
            return None
        if request.run_key:
            self._keys.add(request.run_key)
        sensor = self.defs.get_sensor_def(sensor_name)
        job_name = request.job_name or sensor.job_name
        job = self.defs.get_job_def(job_name)
        result = job.execute_in_process(
            instance=self.instance,
            tags=dict(request.tags),
            partition_key=request.partition_key,
            run_config=request.run_config or None,
            raise_on_error=False,
        )
        launched = Launched(sensor_name, request, result)
        self.launched.append(launched)
        return launched

    def tick_and_run(self, sensor_name: str) -> list[Launched]:
        """One tick, then every run it requested (in order)."""
        data = self.tick(sensor_name)
        return [
            r for r in (self.run(sensor_name, req) for req in data.run_requests) if r is not None
        ]
