"""The shared release rules, proved over random org trees with an exact rational rank audit."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.release.audit import RowSpace, determined_cells, hierarchy_equations
from shared.release.guard import MEMBERS, Membership, hold_back
from shared.release.suppression import BELOW_K, COMPLEMENTARY, Decision, Hierarchy, plan


@st.composite
def org(draw: st.DrawFn, max_units: int = 12) -> tuple[Hierarchy, dict[str, int], dict[str, float], int]:
    """A random forest, people directly in each unit, noisy counts near the true ones, and k."""
    n = draw(st.integers(1, max_units))
    parents: dict[str, str | None] = {"u0": None}
    for i in range(1, n):
        parents[f"u{i}"] = draw(st.one_of(st.none(), st.sampled_from([f"u{j}" for j in range(i)])))
    direct = {u: draw(st.sampled_from([0, 0, 1, 2, 3, 4, 5, 6, 8, 12])) for u in parents}
    tree = Hierarchy(parents)
    totals = tree.subtree_totals(direct)
    noisy = {u: totals[u] + draw(st.integers(-3, 3)) for u in parents}
    k = draw(st.integers(3, 6))
    return tree, totals, noisy, k


@settings(max_examples=300, deadline=None)
@given(org())
def test_no_released_cell_has_fewer_than_k(case):
    tree, totals, noisy, k = case
    decisions = plan(tree, totals, noisy, k)
    assert all(totals[u] >= k and noisy[u] >= k for u, d in decisions.items() if d.released)


@settings(max_examples=300, deadline=None)
@given(org())
def test_no_suppressed_cell_is_determined_by_one_release(case):
    tree, totals, noisy, k = case
    decisions = plan(tree, totals, noisy, k)
    assert determined_cells(tree, totals, decisions, k) == []


def test_parent_minus_children_is_stopped_by_suppressing_the_next_smallest_sibling():
    tree = Hierarchy({"dept": None, "a": "dept", "b": "dept", "c": "dept"})
    totals = tree.subtree_totals({"a": 2, "b": 7, "c": 9})
    decisions = plan(tree, totals, {u: float(n) for u, n in totals.items()}, 5)
    assert decisions["a"].reason == BELOW_K
    assert decisions["b"].reason == COMPLEMENTARY  # the next smallest, not c
    assert decisions["dept"].released and decisions["c"].released
    assert determined_cells(tree, totals, decisions, 5) == []


def test_direct_members_of_a_parent_are_a_cell_of_their_own():
    # dept has 2 people of its own: releasing dept, a and b would give them by subtraction.
    tree = Hierarchy({"dept": None, "a": "dept", "b": "dept"})
    totals = tree.subtree_totals({"dept": 2, "a": 6, "b": 9})
    decisions = plan(tree, totals, {u: float(n) for u, n in totals.items()}, 5)
    assert not decisions["a"].released  # suppressed with the direct cell: together 8 >= k
    assert decisions["dept"].released and decisions["b"].released
    assert determined_cells(tree, totals, decisions, 5) == []


def test_without_complementary_suppression_the_audit_finds_the_cell():
    """The audit itself can fail: primary suppression alone leaves ``a`` = dept - b - c."""
    tree = Hierarchy({"dept": None, "a": "dept", "b": "dept", "c": "dept"})
    totals = tree.subtree_totals({"a": 2, "b": 7, "c": 9})
    primary_only = plan(Hierarchy({u: None for u in totals}), totals, totals, 5)  # no equations seen
    assert determined_cells(tree, totals, primary_only, 5) == ["a"]


def test_decisions_use_noisy_counts_too():
    tree = Hierarchy({"a": None})
    assert not plan(tree, {"a": 9}, {"a": 4.0}, 5)["a"].released  # true 9, noisy 4: suppressed
    assert not plan(tree, {"a": 4}, {"a": 6.0}, 5)["a"].released  # true 4, noisy 6: suppressed


@st.composite
def two_weeks(draw: st.DrawFn):
    """One org over two ISO weeks: between them a team is renamed and one person moves."""
    tree, totals, noisy, k = draw(org(max_units=10))
    direct = {u: totals[u] - sum(totals[c] for c in tree.children[u]) for u in tree.parents}
    units = sorted(tree.parents)
    renamed = draw(st.sampled_from(units))
    parents2 = {(f"{u}-new" if u == renamed else u): p for u, p in tree.parents.items()}
    parents2 = {u: (f"{p}-new" if p == renamed else p) for u, p in parents2.items()}
    direct2 = {(f"{u}-new" if u == renamed else u): n for u, n in direct.items()}
    mover_from, mover_to = draw(st.sampled_from(sorted(direct2))), draw(st.sampled_from(sorted(direct2)))
    if direct2[mover_from] > 0:
        direct2[mover_from] -= 1
        direct2[mover_to] += 1
    tree2 = Hierarchy(parents2)
    totals2 = tree2.subtree_totals(direct2)
    noisy2 = {u: totals2[u] + draw(st.integers(-3, 3)) for u in parents2}
    return k, (tree, totals, noisy), (tree2, totals2, noisy2)


@settings(max_examples=200, deadline=None)
@given(two_weeks())
def test_no_suppressed_cell_is_determined_across_two_successive_releases(case):
    """Both weeks' released figures and equations together: still nothing suppressed is determined.

    Each week's cells are their own unknowns (contributions carry per-week tokens that cannot be
    linked), related only through the public tree of that week.
    """
    k, (tree1, totals1, noisy1), (tree2, totals2, noisy2) = case
    d1, d2 = plan(tree1, totals1, noisy1, k), plan(tree2, totals2, noisy2, k)
    space = RowSpace()
    for tag, tree, totals, decisions in (("w1:", tree1, totals1, d1), ("w2:", tree2, totals2, d2)):
        for row in hierarchy_equations(tree, totals, tag):
            space.add(row)
        for unit, decision in decisions.items():
            if decision.released or totals[unit] == 0:
                space.add({f"{tag}{unit}": 1})
    for tag, totals, decisions in (("w1:", totals1, d1), ("w2:", totals2, d2)):
        for unit, decision in decisions.items():
            assert decision.released or not totals[unit] or not space.contains({f"{tag}{unit}": 1}), unit


def test_seven_to_eight_people_is_held_back():
    """A unit read with 7 and then 8 members gives the newcomer's figures by subtraction."""
    before = frozenset(f"p{i}" for i in range(7))
    after = before | {"p7"}
    held = hold_back({"team": Membership({MEMBERS: after})}, [Membership({MEMBERS: before})], 5)
    assert held == {"team": "differs_from_earlier_release_by_fewer_than_k"}
    much_later = after | {f"q{i}" for i in range(5)}
    assert hold_back({"team": Membership({MEMBERS: much_later})}, [Membership({MEMBERS: before})], 5) == {}


def test_rank_space_is_exact():
    space = RowSpace()
    space.add({"a": 1, "b": 1})
    space.add({"b": 1, "c": 1})
    assert not space.contains({"a": 1})
    space.add({"c": 1})
    assert space.contains({"a": 1}) and space.rank == 3


def test_a_replayed_cell_keeps_its_decision_and_is_never_a_complement():
    tree = Hierarchy({"dept": None, "a": "dept", "b": "dept", "c": "dept"})
    totals = tree.subtree_totals({"a": 2, "b": 7, "c": 9})
    noisy = {u: float(n) for u, n in totals.items()}
    decisions = plan(tree, totals, noisy, 5, pinned={"b": Decision(True)})
    assert decisions["b"].released
    assert decisions["c"].reason == COMPLEMENTARY  # b could not be taken back: c protects a
    assert determined_cells(tree, totals, decisions, 5) == []


def test_one_changed_choice_among_the_same_members_is_held_back():
    """5/38 -> 4/38: the same 38 people, one fewer granting: the difference is that person."""
    people = frozenset(f"p{i}" for i in range(38))
    before = Membership({MEMBERS: people, "checkin": frozenset(f"p{i}" for i in range(5))})
    after = Membership({MEMBERS: people, "checkin": frozenset(f"p{i}" for i in range(4))})
    assert hold_back({"*": after}, [before], 5) == {"*": "differs_from_earlier_release_by_fewer_than_k"}
    assert hold_back({"*": before}, [before], 5) == {}  # unchanged: nothing new to learn
