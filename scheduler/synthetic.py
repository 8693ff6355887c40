"""Seeded synthetic districts: a province for the benchmark, small ones for property tests.

Shape: regions (counties) each with a few master schools and many small remote schools; a
mix of bell schedules (40- and 45-minute periods, starts staggered by 5–15 minutes, some with
a summer schedule); English in three editions, music, art and science in one or two; remote
classes with a handful of free periods shared by the subjects they lack.

``partner_ring``: the counties also form a ring of pairings (结对帮扶), each county's master
teachers serving the next county's classes; ``bans_for_pairings`` says the same with bans
on a district that allows every cross-region match, the way it had to be said before pairings.
"""

from __future__ import annotations

import random
from datetime import date, time

from scheduler.domain import (
    WORKDAYS,
    Ban,
    BellSchedule,
    DateRange,
    Demand,
    District,
    MakeupDay,
    Offering,
    Pairing,
    Party,
    Period,
    Policy,
    Region,
    School,
    Slot,
    TermCalendar,
    Weekday,
)

SUBJECTS: list[tuple[str, list[tuple[str, float]]]] = [
    ("英语", [("人教PEP", 0.6), ("外研版", 0.25), ("译林版", 0.15)]),
    ("音乐", [("人音版", 0.8), ("湘艺版", 0.2)]),
    ("美术", [("人美版", 1.0)]),
    ("科学", [("教科版", 0.7), ("苏教版", 0.3)]),
]
# (first period start in minutes, period length): a realistic mix of county bell schedules.
TEMPLATES = [(480, 40), (485, 40), (490, 40), (470, 45), (480, 45), (495, 40)]


def bell(start: int, length: int, periods: int = 8, afternoon_shift: int = 0) -> list[Period]:
    out, t = [], start
    for n in range(1, periods + 1):
        if n == periods // 2 + 1:
            t = 14 * 60 + (start - 480) + afternoon_shift
        out.append(
            Period(
                number=n,
                start=time(t // 60, t % 60),
                end=time((t + length) // 60, (t + length) % 60),
            )
        )
        t += length + (20 if n == 2 else 10)
    return out


def school_schedules(template: int, seasonal: bool, periods: int = 8) -> list[BellSchedule]:
    start, length = TEMPLATES[template]
    if not seasonal:
        return [BellSchedule(periods=bell(start, length, periods))]
    return [
        BellSchedule(
            season="winter", start="10-01", end="04-30", periods=bell(start, length, periods)
        ),
        BellSchedule(
            season="summer", start="05-01", end="09-30", periods=bell(start, length, periods, 30)
        ),
    ]


def term() -> TermCalendar:
    return TermCalendar(
        first_day=date(2026, 9, 1),
        weeks=20,
        holidays=[DateRange(start=date(2026, 10, 1), end=date(2026, 10, 8))],
        makeup_days=[
            MakeupDay(date=date(2026, 9, 27), follows=Weekday.mon),
            MakeupDay(date=date(2026, 10, 10), follows=Weekday.fri),
        ],
    )


def _pick(rng: random.Random, options: list[tuple[str, float]]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def province(
    seed: int = 1,
    offerings: int = 5000,
    classes: int = 20000,
    regions: int = 16,
    periods_per_day: int = 8,
    policy: Policy | None = None,
    partner_ring: bool = False,
) -> District:
    rng = random.Random(seed)
    slots = [Slot(weekday=d, period=p) for d in WORKDAYS for p in range(1, periods_per_day + 1)]
    schools: list[School] = []
    offer_list: list[Offering] = []
    demand_list: list[Demand] = []
    per_region_off = max(1, offerings // regions)
    per_region_cls = max(1, classes // regions)
    for r in range(regions):
        region = Region(province="41", city=f"41{r // 4:02d}", county=f"41{r // 4:02d}{r % 4:02d}")
        seasonal = rng.random() < 0.5
        standard = rng.randrange(len(TEMPLATES))  # most schools keep the county's bell times
        masters = []
        for m in range(max(1, per_region_off // 60)):
            tpl = standard if rng.random() < 0.7 else rng.randrange(len(TEMPLATES))
            school = School(
                id=f"r{r}-m{m}", name=f"县实验{r}-{m}", region=region, uplink_mbps=200,
                downlink_mbps=200, bell_schedules=school_schedules(tpl, seasonal, periods_per_day),
            )  # fmt: skip
            masters.append(school)
        schools.extend(masters)
        made = 0
        t = 0
        while made < per_region_off:
            subject, editions = rng.choice(SUBJECTS)
            edition, grade, school = _pick(rng, editions), rng.randint(1, 6), rng.choice(masters)
            teacher = f"r{r}-t{t}"
            t += 1
            for slot in rng.sample(slots, k=min(per_region_off - made, rng.randint(2, 3))):
                offer_list.append(
                    Offering(
                        id=f"o{len(offer_list)}", teacher=teacher, school=school.id, classroom="c1",
                        grade=grade, subject=subject, edition=edition, weekday=slot.weekday,
                        period=slot.period, max_remote=rng.choice([3, 4, 4, 4]),
                    )
                )  # fmt: skip
                made += 1
        by_need: dict[tuple[int, str, str], dict[str, list[Slot]]] = {}
        for o in offer_list[len(offer_list) - made :]:
            teachers = by_need.setdefault((o.grade, o.subject, o.edition), {})
            teachers.setdefault(o.teacher, []).append(Slot(weekday=o.weekday, period=o.period))
        k = 0
        while k < per_region_cls:
            tpl = standard if rng.random() < 0.7 else rng.randrange(len(TEMPLATES))
            weak = rng.random() < 0.2
            school = School(
                id=f"r{r}-s{len(schools)}", name=f"教学点{len(schools)}", region=region,
                uplink_mbps=50 if weak else 100, downlink_mbps=10 if weak else 30,
                bell_schedules=school_schedules(tpl, seasonal, periods_per_day),
            )  # fmt: skip
            schools.append(school)
            for grade in rng.sample(range(1, 7), k=min(per_region_cls - k, rng.randint(2, 6))):
                k += 1
                cid = f"{school.id}-g{grade}"
                needs = [
                    (sub, _pick(rng, eds))
                    for sub, eds in rng.sample(SUBJECTS, k=rng.choice([1, 1, 2]))
                ]
                free = set(rng.sample(slots, k=rng.randint(2, 5)))
                for subject, edition in needs:
                    teachers = by_need.get((grade, subject, edition), {})
                    # Schools arrange free periods around the county's master lessons.
                    for teacher in rng.sample(
                        sorted(teachers), k=min(len(teachers), rng.choice([0, 1, 1, 2]))
                    ):
                        free.update(teachers[teacher])
                for subject, edition in needs:
                    demand_list.append(
                        Demand(
                            id=f"{cid}-{subject}", class_id=cid, school=school.id, grade=grade,
                            class_size=rng.randint(5, 40), subject=subject, edition=edition,
                            periods_per_week=rng.choice([1, 2, 2, 2, 3]),
                            free_periods=sorted(free, key=lambda x: (x.weekday.iso, x.period)),
                        )
                    )  # fmt: skip
    pol = policy or Policy(
        cross_region=False,
        sfu_capacity={s.region.key("county"): 400 for s in schools},
        teacher_weekly_streams=3,
    )
    return District(
        id=f"province-{seed}", name="synthetic", term=term(), policy=pol, schools=schools,
        offerings=offer_list, demands=demand_list,
        pairings=ring_pairings(schools) if partner_ring else [],
    )  # fmt: skip


def ring_pairings(schools: list[School]) -> list[Pairing]:
    """Each county serves the next one (in the order the schools list them), the last the
    first: every class gets one partner county besides its own, every subject."""
    counties = list(dict.fromkeys(s.region.key("county") for s in schools))
    if len(counties) < 2:
        return []
    return [
        Pairing(
            serving=Party(region=county), served=Party(region=counties[(k + 1) % len(counties)])
        )
        for k, county in enumerate(counties)
    ]


def bans_for_pairings(district: District) -> District:
    """``district`` with its pairings said as bans instead: cross-region matching on, no
    pairings, and a ban on every (class, offering) of the same grade, subject and edition in
    another region that no pairing allows (the same candidates, one ban per refused pair)."""
    from scheduler.pairings import Reach  # the generator itself needs no matching rules

    reach = Reach(district)
    by_need: dict[tuple[int, str, str], list[Offering]] = {}
    for o in district.offerings:
        by_need.setdefault((o.grade, o.subject, o.edition), []).append(o)
    bans: dict[tuple[str, str], Ban] = {(b.class_id, b.offering_id): b for b in district.bans}
    for d in district.demands:
        sources = reach.sources(d.school, d.subject)
        for o in by_need.get((d.grade, d.subject, d.edition), []):
            if not reach.serves(sources, o.school):
                bans.setdefault((d.class_id, o.id), Ban(class_id=d.class_id, offering_id=o.id))
    policy = district.policy.model_copy(update={"cross_region": True})
    return district.model_copy(
        update={"policy": policy, "pairings": [], "bans": list(bans.values())}
    )
