"""``kinwell demo``: seed a synthetic organisation into a running embedded platform, through its
public APIs only, then print what HR would see.

The organisation (defaults): 3 divisions under one root, 12 teams of 3 to 40 people, 300
employees, imported as an HRIS snapshot (``POST /v1/hris/import``, integration token). About 78%
give ``checkin`` consent and, of those, about 80% also ``aggregate_insights``; each week about
85% of them check in (fewer in the weeks of a deadline). Then 12 weeks of check-ins (``POST
/v1/checkins``, one employee token each), backdated with the demo clock (``shared.clock``), with:

* a reorganisation halfway: the platform team moves from Product to Operations (``org_unit.moved``
  and a ``reorganisation`` trigger), and its wellbeing dips for two weeks;
* Sales closes every three weeks, on a Friday (a ``deadline`` trigger each, the last in the final
  week): WHO-5 drops by ``DEADLINE_DROP`` in Sales in the week before and the week of each close;
* the next close, on Friday next week, announced once every week is released: the forecast.

Why these numbers: a forecast needs the effect around at least 3 past triggers and is raised only
when its 95% prediction interval (t quantile with n - 1 degrees of freedom, the released means' DP
noise included) lies wholly below zero. Sales has about 78 contributors a week at 300 employees
(65 in the weeks of a close), so its weekly mean carries DP noise of sd 1.4-1.7 (sum noise scale
112 on the 0-100 range at rho_sum = 0.1, over the count) and one close's effect an sd of about 2
with the sampling. A simulation of this data with the release noise and the estimator (1,500
runs): with four past closes (t = 3.18) and a drop of 24 the interval's upper end was -16.6 at the
median and never above -3.7; with three (10 weeks, t = 4.30) it reached zero in about 1 run in
100. At 60 employees (sd ~7 per weekly mean) the noise hides the drop: smaller runs show no
forecast.

The clock is then set back to real time, the aggregator releases every closed week, and the
demo prints the rollups (released cells with their noise and 95% intervals, suppressed cells
with their reason), the insights with the forecast (``GET /v1/rollups``, ``GET /v1/insights``,
hr_analyst) and how earlier forecasts scored (``GET /v1/program-metrics``).

It needs the platform started with the demo clock (``kinwell up --demo``, embedded mode only),
and a fresh data folder: weeks already released stay as released.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TextIO

import httpx

from shared import clock
from shared.hris.snapshot import Progress, ProgressBar
from shared.settings import DEFAULT_PORTS, PlatformSettings

ROOT = "acme"
DIVISIONS = ("product", "operations", "sales")
# (team, division, people at the default 300 employees): 3 to 40 per team.
TEAMS = (
    ("product-design", "product", 9),
    ("product-web", "product", 27),
    ("product-mobile", "product", 22),
    ("product-platform", "product", 16),
    ("product-data", "product", 5),
    ("ops-support", "operations", 40),
    ("ops-infra", "operations", 30),
    ("ops-finance", "operations", 3),
    ("sales-emea", "sales", 39),
    ("sales-americas", "sales", 36),
    ("sales-apac", "sales", 33),
    ("sales-partners", "sales", 40),
)
MOVED_TEAM, MOVED_TO = "product-platform", "operations"
P_CHECKIN, P_AGGREGATE, P_WEEKLY = 0.78, 0.80, 0.85
DEADLINE_DROP, REORG_DROP = 24.0, 14.0  # WHO-5 index points, on a 0-100 scale
CLOSES, CLOSE_EVERY = "sales", 3  # the division whose deadlines recur, every 3 weeks
UPCOMING = "demo-sales-close-next"


@dataclass
class Person:
    employee_id: str
    team: str
    base: float  # usual WHO-5 index
    checkin: bool
    aggregate: bool


@dataclass
class Plan:
    weeks: list[date]  # Mondays, oldest first
    people: list[Person]
    reorg_week: int
    close_weeks: list[int]  # Sales closes on the Friday of these weeks
    teams: dict[str, str] = field(default_factory=dict)  # team -> division at the start

    def division_at(self, team: str, week: int) -> str:
        if team == MOVED_TEAM and week >= self.reorg_week:
            return MOVED_TO
        return self.teams[team]

    def crunch(self, team: str, week: int) -> bool:
        """The week before a close and the week of it, in Sales."""
        return self.division_at(team, week) == CLOSES and (week in self.close_weeks or week + 1 in self.close_weeks)

    def close_on(self, week: int) -> date:
        return self.weeks[0] + timedelta(weeks=week, days=4)


def team_sizes(employees: int) -> dict[str, int]:
    """The default team sizes scaled to ``employees`` (at least 3 per team)."""
    total = sum(size for _, _, size in TEAMS)
    return {team: max(3, round(size * employees / total)) for team, _, size in TEAMS}


def make_plan(employees: int, weeks: int, today: date, rng: random.Random) -> Plan:
    """Weeks end two weeks before ``today``'s week, so each is due for release in real time."""
    monday = today - timedelta(days=today.weekday())
    first = monday - timedelta(weeks=weeks + 1)
    run = uuid.uuid4().hex[:6]
    people: list[Person] = []
    for team, size in team_sizes(employees).items():
        for _ in range(size):
            checkin = rng.random() < P_CHECKIN
            people.append(
                Person(
                    employee_id=f"demo-{run}-{len(people) + 1:04d}",
                    team=team,
                    base=min(92.0, max(28.0, rng.gauss(64, 11))),
                    checkin=checkin,
                    aggregate=checkin and rng.random() < P_AGGREGATE,
                )
            )
    return Plan(
        weeks=[first + timedelta(weeks=i) for i in range(weeks)],
        people=people,
        reorg_week=weeks // 2,
        close_weeks=sorted(range(weeks - 1, -1, -CLOSE_EVERY)),
        teams={team: division for team, division, _ in TEAMS},
    )


def answers(index: float, rng: random.Random) -> dict[str, int]:
    """WHO-5 items (0-5) summing to about ``index`` / 4, and a mood (1-5) that goes with it."""
    raw = max(0.0, min(25.0, index / 4))
    items = [max(0, min(5, round(raw / 5 + rng.gauss(0, 0.6)))) for _ in range(5)]
    mood = max(1, min(5, round(1 + index / 25 + rng.gauss(0, 0.5))))
    return {**{f"who5_{i + 1}": v for i, v in enumerate(items)}, "mood": mood}


def score(plan: Plan, person: Person, week: int, rng: random.Random) -> float:
    index = person.base + rng.gauss(0, 7)
    if plan.crunch(person.team, week):
        index -= DEADLINE_DROP
    if person.team == MOVED_TEAM and week in (plan.reorg_week, plan.reorg_week + 1):
        index -= REORG_DROP if week == plan.reorg_week else REORG_DROP / 2
    return index


def hris_snapshot(plan: Plan, start: date) -> list[dict[str, Any]]:
    """The organisation as the HRIS would send it: units, then employees (ids only, no names)."""
    since = start.isoformat()
    events: list[dict[str, Any]] = [
        {"type": "org_unit.created", "org_unit": {"org_unit_id": ROOT}, "effective_from": since}
    ]
    events += [
        {
            "type": "org_unit.created",
            "org_unit": {"org_unit_id": d, "parent_id": ROOT},
            "effective_from": start.isoformat(),
        }
        for d in DIVISIONS
    ]
    events += [
        {
            "type": "org_unit.created",
            "org_unit": {"org_unit_id": t, "parent_id": d},
            "effective_from": start.isoformat(),
        }
        for t, d in plan.teams.items()
    ]
    events += [
        {
            "type": "employee.created",
            "employee": {"employee_id": p.employee_id, "org_unit": p.team, "effective_from": since},
        }
        for p in plan.people
    ]
    return events


def trigger(tid: str, kind: str, units: list[str], starts: date, ends: date | None, label: str) -> dict[str, Any]:
    event = {"type": "trigger.announced", "trigger_id": tid, "kind": kind, "org_units": units,
             "starts_on": starts.isoformat(), "label": label}  # fmt: skip
    if ends is not None:
        event["ends_on"] = ends.isoformat()
    return event


class DemoFailed(Exception):
    """The platform refused or did not answer; the message is for the operator."""


class Demo:
    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.platform = PlatformSettings()
        self.args = args
        self.out, self.err = out, err
        self.rng = random.Random(args.seed)
        self.urls = {name: f"http://127.0.0.1:{port + args.port_offset}" for name, port in DEFAULT_PORTS.items()}
        self.bar = None if args.no_progress else ProgressBar(err)
        self.progress = (0, 1)
        self._tokens: dict[tuple[str, str], str] = {}
        self.versions: dict[str, int] = {}

    # --- plumbing ------------------------------------------------------------------------------

    def token(self, sub: str, role: str) -> str:
        from shared.auth import dev_token

        key = (sub, role)
        if key not in self._tokens:
            self._tokens[key] = dev_token(self.platform, sub, [role], ttl_seconds=3600)
        return self._tokens[key]

    async def call(
        self, client: httpx.AsyncClient, method: str, url: str, sub: str, role: str, ok: tuple[int, ...], **kw: Any
    ) -> httpx.Response:
        """One request, retried while the platform says "not yet" (503, 429, a consent still on its way)."""
        headers = {"Authorization": f"Bearer {self.token(sub, role)}"}
        for attempt in range(40):
            try:
                response = await client.request(method, url, headers=headers, **kw)
            except httpx.TransportError as exc:
                if attempt >= 5:
                    raise DemoFailed(
                        f"{url}: {type(exc).__name__}; is the platform running (kinwell up --demo)?"
                    ) from None
            else:
                if response.status_code in ok:
                    return response
                later = response.status_code in (429, 503) or response.status_code in (403, 409) and attempt < 8
                if not later or attempt >= 39:
                    detail = (
                        response.json().get("detail", "") if "json" in response.headers.get("content-type", "") else ""
                    )
                    raise DemoFailed(f"{method} {url} answered {response.status_code} {detail}".strip())
            await asyncio.sleep(min(2.0, 0.1 * 2 ** min(attempt, 5)))
        raise DemoFailed(f"{method} {url}: no answer")  # pragma: no cover

    def step(self, done: int = 1) -> None:
        count, total = self.progress
        self.progress = (count + done, total)
        if self.bar is not None:
            self.bar(Progress(count + done, count + done, total))

    async def gather(self, work: list[Any]) -> list[Any]:
        limit = asyncio.Semaphore(self.args.concurrency)

        async def one(coro: Any) -> Any:
            async with limit:
                result = await coro
            self.step()
            return result

        return await asyncio.gather(*(one(c) for c in work))

    def say(self, text: str) -> None:
        if self.bar is not None and self.progress[0] < self.progress[1]:
            self.err.write("\n")
        self.err.write(text + "\n")
        self.err.flush()

    # --- the run -------------------------------------------------------------------------------

    async def run(self) -> None:
        today = datetime.now(UTC).date()
        plan = make_plan(self.args.employees, self.args.weeks, today, self.rng)
        if len(plan.weeks) < 2:
            raise DemoFailed("--weeks must be at least 2")
        start = plan.weeks[0] - timedelta(weeks=4)
        checkins = sum(1 for p in plan.people if p.checkin) * len(plan.weeks)
        imports = hris_snapshot(plan, start)
        self.progress = (0, len(plan.people) + len(imports) // 500 + 1 + round(checkins * P_WEEKLY))
        divisions = Counter(plan.teams.values())
        self.say(
            f"Seeding {len(plan.people)} employees in {len(plan.teams)} teams of {len(divisions)} divisions, "
            f"{len(plan.weeks)} weeks from {_week(plan.weeks[0])} to {_week(plan.weeks[-1])}"
        )
        async with httpx.AsyncClient(timeout=30.0) as client:
            await self._check_fresh(client, plan)
            await self._hris(client, imports)
            await self._consents(client, plan)
            await self._wait_for_org(client, len(plan.teams) + len(DIVISIONS) + 1)
            try:
                for week in range(len(plan.weeks)):
                    await self._week(client, plan, week)
            finally:
                clock.reset(self.platform.data_dir)  # back to real time, whatever happened
            if self.bar is not None:
                self.bar(Progress(self.progress[1], self.progress[1], self.progress[1]))
            self.say("Waiting for the aggregator to release the weeks ...")
            rollups = await self._released(client, plan)
            # Announced once every week is released, so that its one assessment rests on all of them.
            upcoming = plan.close_on(len(plan.weeks) + 2)  # Friday next week
            await self._hris(client, [trigger(UPCOMING, "deadline", [CLOSES], upcoming, None, "Sales close")],
                             progress=False)  # fmt: skip
            self.say("Waiting for the forecast job to assess the coming close ...")
            insights = await self._assessed(client)
            metrics = await self.call(client, "GET", f"{self.urls['aggregator']}/v1/program-metrics", "demo-hr",
                                      "hr_analyst", (200,))  # fmt: skip
        self.out.write(render(plan, rollups, insights, metrics.json()))

    async def _check_fresh(self, client: httpx.AsyncClient, plan: Plan) -> None:
        url = f"{self.urls['aggregator']}/v1/rollups"
        found = await self.call(client, "GET", url, "demo-hr", "hr_analyst", (200,),
                                params={"from": _week(plan.weeks[0]), "metric": "who5_index", "limit": 1})  # fmt: skip
        if found.json()["cells"]:
            raise DemoFailed(
                "this platform already holds releases for the demo's weeks; run it on a fresh data folder "
                "(stop kinwell up, `make clean` or another KINWELL_DATA_DIR, then `kinwell up --demo`)"
            )

    async def _hris(self, client: httpx.AsyncClient, events: list[dict[str, Any]], progress: bool = True) -> None:
        url = f"{self.urls['consent']}/v1/hris/import"
        for i in range(0, len(events), 500):
            await self.call(client, "POST", url, "kinwell-demo", "integration", (200, 201, 202),
                            json={"events": events[i : i + 500]})  # fmt: skip
            if progress:
                self.step()

    async def _consents(self, client: httpx.AsyncClient, plan: Plan) -> None:
        consent = self.urls["consent"]
        listed = await self.call(client, "GET", f"{consent}/v1/me/consents", "demo-reader", "employee", (200,))
        self.versions = {c["purpose"]: c["current_policy_version"] for c in listed.json()["consents"]}

        async def grant(person: Person) -> None:
            for purpose, wanted in (("checkin", person.checkin), ("aggregate_insights", person.aggregate)):
                if wanted:
                    await self.call(client, "PUT", f"{consent}/v1/me/consents/{purpose}", person.employee_id,
                                    "employee", (200,), json={"policy_version": self.versions[purpose]})  # fmt: skip

        await self.gather([grant(p) for p in plan.people])

    async def _wait_for_org(self, client: httpx.AsyncClient, units: int) -> None:
        """Until the aggregator knows the org tree (check-in reads the same HRIS events)."""
        url = f"{self.urls['aggregator']}/v1/org"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            body = (await self.call(client, "GET", url, "demo-hr", "hr_analyst", (200,))).json()
            if len(body.get("units", [])) >= units:
                await asyncio.sleep(self.args.settle)  # and check-in its assignments
                return
            await asyncio.sleep(0.5)
        raise DemoFailed("the aggregator did not receive the org tree within 60 s")

    async def _week(self, client: httpx.AsyncClient, plan: Plan, week: int) -> None:
        monday = plan.weeks[week]
        at = datetime.combine(monday, datetime.min.time(), UTC) + timedelta(hours=9)
        clock.set_offset(self.platform.data_dir, (at - datetime.now(UTC)).total_seconds())
        if week == 0:  # the closes are in the calendar from the start
            await self._hris(client, [
                trigger(f"demo-sales-close-{i + 1}", "deadline", [CLOSES], plan.close_on(w), None, "Sales close")
                for i, w in enumerate(plan.close_weeks)
            ], progress=False)  # fmt: skip
        if week == plan.reorg_week:
            await self._hris(client, [
                {"type": "org_unit.moved", "org_unit_id": MOVED_TEAM, "parent_id": MOVED_TO,
                 "effective_from": monday.isoformat()},
                trigger("demo-platform-move", "reorganisation", [MOVED_TEAM, "product", MOVED_TO], monday, None,
                        "Platform team joins Operations"),
            ], progress=False)  # fmt: skip
        taking = [
            p for p in plan.people
            if p.checkin and self.rng.random() < P_WEEKLY - (0.15 if plan.crunch(p.team, week) else 0.0)
        ]  # fmt: skip
        bodies = {p.employee_id: {"answers": answers(score(plan, p, week, self.rng), self.rng), "lang": "en"}
                  for p in taking}  # fmt: skip
        url = f"{self.urls['checkin']}/v1/checkins"

        async def check_in(person: Person) -> str:
            response = await self.call(client, "POST", url, person.employee_id, "employee", (201,),
                                       json=bodies[person.employee_id])  # fmt: skip
            return str(response.json()["iso_week"])

        weeks = set(await self.gather([check_in(p) for p in taking]))
        if weeks and weeks != {_week(monday)}:
            raise DemoFailed(
                f"check-in dated this week {sorted(weeks)}, not {_week(monday)}: the platform does not follow the "
                "demo clock; start it with `kinwell up --demo` (KINWELL_DEMO_CLOCK=true, embedded mode only)"
            )
        await asyncio.sleep(self.args.settle)  # check-in releases held-back contributions every few seconds

    async def _every_page(
        self, client: httpx.AsyncClient, path: str, params: dict[str, str], lists: tuple[str, ...]
    ) -> dict[str, Any]:
        """Every page of a cursor-paged aggregator list, as one body (``lists`` concatenated)."""
        url = f"{self.urls['aggregator']}{path}"
        query: dict[str, Any] = {**params, "limit": 200}
        body = (await self.call(client, "GET", url, "demo-hr", "hr_analyst", (200,), params=query)).json()
        whole = {name: list(body[name]) for name in lists}
        while body["next_cursor"] is not None:
            query["cursor"] = body["next_cursor"]
            body = (await self.call(client, "GET", url, "demo-hr", "hr_analyst", (200,), params=query)).json()
            for name in lists:
                whole[name] += body[name]
        return {**body, **whole, "next_cursor": None}

    async def _until(
        self,
        fetch: Callable[[], Awaitable[dict[str, Any]]],
        done: Callable[[dict[str, Any]], bool],
        failure: Callable[[dict[str, Any]], str],
    ) -> dict[str, Any]:
        """``fetch()`` each second until ``done`` says yes; DemoFailed with ``failure`` past the
        release timeout (the aggregator's jobs run on their own schedule)."""
        deadline = time.monotonic() + self.args.release_timeout
        while True:
            body = await fetch()
            if done(body):
                return body
            if time.monotonic() > deadline:
                raise DemoFailed(failure(body))
            await asyncio.sleep(1.0)

    async def _assessed(self, client: httpx.AsyncClient) -> dict[str, Any]:
        """``GET /v1/insights`` once the forecast job has assessed the coming close (its rows for a
        trigger are written in one transaction, after scoring the forecasts whose period passed)."""

        def assessed(body: dict[str, Any]) -> bool:
            rows = [i for i in body["insights"] if i["kind"] == "forecast"] + body["forecasts_withheld"]
            return any(r.get("trigger", r)["trigger_id"] == UPCOMING for r in rows)

        return await self._until(
            lambda: self._every_page(client, "/v1/insights", {}, ("insights", "forecasts_withheld")),
            assessed,
            lambda _: (
                f"the coming close was not assessed within {self.args.release_timeout:.0f} s; the aggregator "
                "reassesses on KINWELL_AGGREGATOR_FORECAST_CHECK_SECONDS (kinwell up --demo: 2 s)"
            ),
        )

    async def _released(self, client: httpx.AsyncClient, plan: Plan) -> dict[str, Any]:
        params = {"from": _week(plan.weeks[0]), "to": _week(plan.weeks[-1])}

        def weeks(body: dict[str, Any]) -> int:
            return len({c["iso_week"] for c in body["cells"]})

        return await self._until(
            lambda: self._every_page(client, "/v1/rollups", params, ("cells",)),
            lambda body: weeks(body) >= len(plan.weeks),
            lambda body: (
                f"{weeks(body)} of {len(plan.weeks)} weeks released after {self.args.release_timeout:.0f} s; "
                "the aggregator releases on KINWELL_AGGREGATOR_RELEASE_CHECK_SECONDS (kinwell up --demo: 2 s)"
            ),
        )


def _week(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def _figure(fig: dict[str, Any] | None, digits: int) -> str:
    if fig is None:
        return ""
    lo, hi = fig["interval_95"]
    return f"{fig['value']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def render(plan: Plan, rollups: dict[str, Any], insights: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The rollups of the last week (each cell), the weekly means per unit, the forecasts (and how
    the earlier ones scored), and the insights."""
    cells = [c for c in rollups["cells"] if c["metric"] == "who5_index"]
    last = max(c["iso_week"] for c in cells)
    lines = [f"\nWHO-5 index (0-100), week {last}, organisation view (k = {rollups['k']}):", ""]
    lines.append(
        f"  {'org unit':<18} {'parent':<12} {'status':<24} {'contributors (noised, 95%)':<30} mean (noised, 95%)"
    )
    order = {ROOT: (0, ""), **{d: (1, d) for d in DIVISIONS}}
    tops = {c["org_unit"]: c for c in cells if c["iso_week"] == last}
    for c in sorted(tops.values(), key=lambda c: order.get(c["org_unit"], (2, c["parent"] or "")) + (c["org_unit"],)):
        status = c["status"] if c["status"] == "released" else f"suppressed ({c['reason']})"
        unit, parent = c["org_unit"], c["parent"] or "-"
        lines.append(f"  {unit:<18} {parent:<12} {status:<24} {_figure(c['count'], 1):<30} {_figure(c['mean'], 1)}")
    weeks = sorted({c["iso_week"] for c in cells})
    lines += ["", "Weekly mean WHO-5 index ('-' suppressed):", ""]
    lines.append(f"  {'org unit':<18} " + " ".join(f"{w[-3:]:>5}" for w in weeks))
    series: dict[str, dict[str, str]] = defaultdict(dict)
    for c in cells:
        series[c["org_unit"]][c["iso_week"]] = f"{c['mean']['value']:.0f}" if c["mean"] else "-"
    for unit in sorted(series, key=lambda u: order.get(u, (2, u)) + (u,)):
        lines.append(f"  {unit:<18} " + " ".join(f"{series[unit].get(w, ''):>5}" for w in weeks))
    statuses = Counter(c["status"] if c["status"] == "released" else c["reason"] for c in rollups["cells"])
    lines += ["", "All metrics and weeks: " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))]
    lines += render_forecasts(insights, metrics)
    others = [i for i in insights["insights"] if i["kind"] != "forecast"]
    lines += ["", f"Insights ({len(others)}):"]
    for i in others:
        trig = i["trigger"]
        lo, hi = i["interval_95"]
        why = f" during {trig['kind']} '{trig['label'] or trig['trigger_id']}'" if trig else ""
        lines.append(
            f"  {i['iso_week']} {i['org_unit']:<18} {i['metric']:<10} {i['kind']:<5} {i['change']:+.1f} "
            f"[{lo:+.1f}, {hi:+.1f}]{why}"
        )
        lines.append(f"      -> {i['suggestion']}")
    return "\n".join(lines) + "\n"


def render_forecasts(insights: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    """Each raised forecast (unit, trigger and date, expected change with its 95% interval, the past
    triggers it rests on, the timed suggestion, and its score once the period passed), what was
    withheld for the coming triggers and why, and the hit rate so far."""
    today = datetime.now(UTC).date().isoformat()
    raised = [i for i in insights["insights"] if i["kind"] == "forecast"]
    lines = ["", f"Forecasts ({len(raised)}):"]
    for f in raised:
        trig, (lo, hi) = f["trigger"], f["interval_95"]
        based = "" if f["based_on"] == f["org_unit"] else f", from {f['based_on']}'s series"
        lines.append(
            f"  {f['org_unit']:<18} {f['metric']:<10} {f['expected_change']:+.1f} [{lo:+.1f}, {hi:+.1f}] "
            f"around {trig['kind']} '{trig['label'] or trig['trigger_id']}' on {trig['starts_on']} "
            f"({f['past_triggers']} past {trig['kind']}s{based})"
        )
        lines.append(f"      -> {f['suggestion']}")
        if f["outcome"]:
            o = f["outcome"]
            seen = "" if o["observed_change"] is None else f": released change {o['observed_change']:+.1f}, "
            inside = "" if o["within_interval"] is None else ("within" if o["within_interval"] else "outside")
            lines.append(f"      scored {o['result']}{seen}{inside + ' the interval' if inside else ''}")
    ahead = [w for w in insights.get("forecasts_withheld", []) if w["starts_on"] > today]
    for (trigger_id, reason), n in sorted(Counter((w["trigger_id"], w["reason"]) for w in ahead).items()):
        lines.append(f"  withheld for '{trigger_id}': {n} unit/metric pairs, {reason}")
    scores = metrics.get("forecasts") or {}
    rate = scores.get("hit_rate")
    lines.append(
        f"  scored so far (GET /v1/program-metrics): {scores.get('scored', 0)} "
        f"({scores.get('hits', 0)} hits, {scores.get('misses', 0)} misses, "
        f"{scores.get('within_interval', 0)} within their interval), hit rate "
        + (f"{rate:.2f}" if rate is not None else "n/a")
    )
    return lines


def cmd_demo(args: argparse.Namespace) -> int:
    if os.environ.get("KINWELL_MODE", PlatformSettings.model_fields["mode"].default) != "embedded":
        print("kinwell demo seeds an embedded platform only (its clock is refused in production).", file=sys.stderr)
        return 2
    try:
        asyncio.run(Demo(args).run())
    except DemoFailed as exc:
        print(f"\nkinwell demo: {exc}", file=sys.stderr)
        return 1
    return 0


def register(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="seed a synthetic organisation into a running `kinwell up --demo` and show what HR sees",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    demo.add_argument("--employees", type=int, default=300, help="people in the organisation (default 300)")
    demo.add_argument("--weeks", type=int, default=12, help="weeks of check-ins (default 12, at least 2)")
    demo.add_argument("--seed", type=int, default=7, help="random seed of the synthetic data")
    demo.add_argument("--port-offset", type=int, default=0, help="as given to kinwell up")
    demo.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    demo.add_argument("--settle", type=float, default=3.0, help="seconds to let events flow after each week")
    demo.add_argument("--release-timeout", type=float, default=120.0)
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.set_defaults(fn=cmd_demo)
