"""Section matching: two resolved versions paired by id, then by similarity; moves, renames, splits and merges."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Literal

from addendum.compare.model import WORD, ChangeSet, Kind, Op, SectionChange, SectionSide, Segment, rebuild
from addendum.compare.words import (
    HEAVY_EDIT_CHARACTERS,
    PARALLEL_CHARACTERS,
    WORKERS,
    Engine,
    changed_characters,
    default_engine,
    diff_workers,
    one_segment,
    word_diff,
)
from addendum.errors import UsageError
from addendum.policy.resolve import ResolvedPolicy, ResolvedSection, normalise

# A removed and an added section are the same section (id changed, e.g. an id derived from a renamed heading)
# when their texts are this similar, or their headings and texts together are.
SAME_TEXT_SIMILARITY = 0.75
SAME_HEADING_SIMILARITY = 0.5
SIMILAR_TEXT_WITH_HEADING = 0.4
# Share of a section's word triples that must come from one other section to call it a split or a merge.
SPLIT_MERGE_CONTAINMENT = 0.5
# A deleted run and an inserted run of at least this many words with the same words are reported as moved text.
MOVED_TEXT_MIN_WORDS = 8



def _side(section: ResolvedSection, position: int) -> SectionSide:
    return SectionSide(section.id, section.path, normalise(section.heading), section.level, position,
                       section.location.file, section.location.line, section.language, section.fallback,
                       normalise(section.text).strip("\n"))


def _bag(text: str) -> Counter[str]:
    return Counter(w.casefold() for w in WORD.findall(text))


def similarity(a: str, b: str) -> float:
    """Dice coefficient of the two texts' words (with repeats): 1.0 same words, 0.0 none in common."""
    bag_a, bag_b = _bag(a), _bag(b)
    total = sum(bag_a.values()) + sum(bag_b.values())
    if not total:
        return 1.0
    return 2 * sum((bag_a & bag_b).values()) / total


def _triples(text: str) -> set[tuple[str, ...]]:
    words = [w.casefold() for w in WORD.findall(text)]
    return {tuple(words[i:i + 3]) for i in range(max(len(words) - 2, 0))}


def _pair_by_similarity(removed: list[SectionSide], added: list[SectionSide]) -> list[tuple[SectionSide, SectionSide]]:
    """Pair removed and added sections that are one section under a new id, best pairs first."""
    candidates = []
    for old in removed:
        for new in added:
            text = similarity(old.text, new.text) if (old.text or new.text) else 0.0
            heading = similarity(old.heading, new.heading)
            if text >= SAME_TEXT_SIMILARITY or (heading >= SAME_HEADING_SIMILARITY and text >= SIMILAR_TEXT_WITH_HEADING):
                candidates.append((text + heading / 2, old.position, new.position, old, new))
    pairs, used_old, used_new = [], set(), set()
    for _, _, _, old, new in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
        if old.id not in used_old and new.id not in used_new:
            pairs.append((old, new))
            used_old.add(old.id)
            used_new.add(new.id)
    return pairs


def _longest_increasing(values: list[int]) -> set[int]:
    """Indexes of one longest strictly increasing subsequence (patience sorting)."""
    import bisect

    tails: list[int] = []
    tail_index: list[int] = []
    previous = [-1] * len(values)
    for i, value in enumerate(values):
        k = bisect.bisect_left(tails, value)
        if k == len(tails):
            tails.append(value)
            tail_index.append(i)
        else:
            tails[k] = value
            tail_index[k] = i
        previous[i] = tail_index[k - 1] if k else -1
    keep: set[int] = set()
    i = tail_index[-1] if tail_index else -1
    while i >= 0:
        keep.add(i)
        i = previous[i]
    return keep


def _moved(pairs: list[tuple[SectionSide, SectionSide]], new_id_of: dict[str, str]) -> set[str]:
    """New ids of sections that moved: a new parent or level, or out of order among the siblings they kept."""
    moved: set[str] = set()
    siblings: dict[str | None, list[tuple[SectionSide, SectionSide]]] = {}
    for old, new in pairs:
        old_parent = new_id_of.get(old.parent, f"\0{old.parent}") if old.parent else None
        if old_parent != new.parent or old.level != new.level:
            moved.add(new.id)
        else:
            siblings.setdefault(new.parent, []).append((old, new))
    for group in siblings.values():
        group.sort(key=lambda pair: pair[1].position)
        keep = _longest_increasing([old.position for old, _ in group])
        moved.update(new.id for i, (_, new) in enumerate(group) if i not in keep)
    return moved


def _moved_text(changes: list[SectionChange]) -> list[SectionChange]:
    """Mark deleted and inserted runs that carry the same words in two places as moved text."""
    runs: dict[tuple[int, int], tuple[Op, str]] = {}  # (change, segment) → (op, its words), for runs long enough
    first_ref: dict[tuple[Op, str], str] = {}
    for c, change in enumerate(changes):
        if not change.changed:
            continue
        for s, segment in enumerate(change.text):
            if segment.op != "equal":
                words = WORD.findall(segment.text.casefold())
                if len(words) >= MOVED_TEXT_MIN_WORDS:
                    runs[c, s] = (segment.op, " ".join(words))
                    first_ref.setdefault(runs[c, s], change.ref)
    other: dict[Op, Op] = {"delete": "insert", "insert": "delete"}
    moved = {place: first_ref[other[op], words] for place, (op, words) in runs.items() if (other[op], words) in first_ref}
    touched = {c for c, _ in moved}
    return [replace(change, text=tuple(replace(segment, moved=moved[c, s]) if (c, s) in moved else segment
                                       for s, segment in enumerate(change.text)))
            if c in touched else change for c, change in enumerate(changes)]


def _splits_and_merges(changes: list[SectionChange]) -> list[SectionChange]:
    """An added section whose words mostly left one old section was split from it; a removed section whose
    words mostly went into one new section was merged into it."""
    if not any(c.has("added") or c.has("removed") for c in changes):
        return changes
    edited = [c for c in changes if c.changed]
    lost = {c.old.ref: _triples(rebuild(c.text, "old")) - _triples(rebuild(c.text, "new")) for c in edited if c.old}
    gained = {c.new.ref: _triples(rebuild(c.text, "new")) - _triples(rebuild(c.text, "old")) for c in edited if c.new}
    out = []
    for change in changes:
        if change.has("added") and change.new:
            mine = _triples(change.new.text)
            source = _best_container(mine, {ref: words for ref, words in lost.items() if ref != change.new.ref}, change)
            change = replace(change, split_from=source)
        elif change.has("removed") and change.old:
            mine = _triples(change.old.text)
            target = _best_container(mine, {ref: words for ref, words in gained.items() if ref != change.old.ref}, change)
            change = replace(change, merged_into=target)
        out.append(change)
    return out


def _best_container(mine: set[tuple[str, ...]], others: dict[str, set[tuple[str, ...]]], change: SectionChange) -> str:
    if len(mine) < 3:
        return ""
    best, best_share = "", 0.0
    for ref, words in others.items():
        share = len(mine & words) / len(mine)
        if share > best_share:
            best, best_share = ref, share
    return best if best_share >= SPLIT_MERGE_CONTAINMENT else ""


def _pair_change(old: SectionSide, new: SectionSide, moved: bool, matched_by: Literal["id", "similarity"],
                 engine: Engine) -> SectionChange:
    heading = word_diff(old.heading, new.heading, engine) if old.heading != new.heading else (
        (Segment("equal", new.heading),) if new.heading else ())
    text = word_diff(old.text, new.text, engine) if old.text != new.text else ((Segment("equal", new.text),) if new.text else ())
    kinds: set[Kind] = set()
    if moved:
        kinds.add("moved")
    if old.heading != new.heading:
        kinds.add("renamed")
    if old.text != new.text:
        kinds.add("modified")
    edits = [s for s in (*heading, *text) if s.op != "equal"]
    return SectionChange(frozenset(kinds or {"unchanged"}), old, new, heading, text,
                         formatting=bool(edits) and all(s.formatting for s in edits), matched_by=matched_by)


def compare(old: ResolvedPolicy, new: ResolvedPolicy, *, engine: Engine | None = None) -> ChangeSet:
    """Compare two resolved versions of one policy for the same site and language."""
    if (old.policy_id, old.site, old.language) != (new.policy_id, new.site, new.language):
        raise UsageError(f"cannot compare {old.policy_id}/{old.site}/{old.language} with {new.policy_id}/{new.site}/{new.language}",
                         "a redline compares two versions of one policy for the same site and language")
    engine = engine or default_engine()
    old_sides = [_side(s, i) for i, s in enumerate(old.sections, 1)]
    new_sides = [_side(s, i) for i, s in enumerate(new.sections, 1)]
    new_by_id = {s.id: s for s in new_sides}
    pairs = [(o, new_by_id[o.id]) for o in old_sides if o.id in new_by_id]
    matched_by: dict[str, Literal["id", "similarity"]] = {o.id: "id" for o, _ in pairs}
    removed = [o for o in old_sides if o.id not in new_by_id]
    old_ids = {o.id for o in old_sides}
    added = [n for n in new_sides if n.id not in old_ids]
    for o, n in _pair_by_similarity(removed, added):
        pairs.append((o, n))
        matched_by[o.id] = "similarity"
    paired_old = {o.id for o, _ in pairs}
    paired_new = {n.id for _, n in pairs}
    new_id_of = {o.id: n.id for o, n in pairs}
    moved = _moved(pairs, new_id_of)

    def pair_changes(batch: list[tuple[SectionSide, SectionSide]]) -> list[SectionChange]:
        return [_pair_change(o, n, n.id in moved, matched_by[o.id], engine) for o, n in batch]

    # The compiled engine lets other threads run while it works: heavily edited texts are shared among the cores.
    heavy = {n.id for o, n in pairs if o.text != n.text and changed_characters(o.text, n.text) >= HEAVY_EDIT_CHARACTERS} \
        if engine == "fast" else set()
    batches = [[pair for pair in pairs if pair[1].id not in heavy], [pair for pair in pairs if pair[1].id in heavy]]
    if sum(len(o.text) + len(n.text) for o, n in batches[1]) >= PARALLEL_CHARACTERS:
        batches[1:] = [batches[1][i::WORKERS] for i in range(WORKERS)]
    done = [pair_changes(batches[0]), *diff_workers().map(pair_changes, batches[1:])] if len(batches) > 2 else map(pair_changes, batches)
    by_new = {n.id: change for batch, results in zip(batches, done, strict=True) for (_, n), change in zip(batch, results, strict=True)}
    changes: list[tuple[tuple[int, int, int], SectionChange]] = []
    for n in new_sides:
        new_section = SectionChange(frozenset({"added"}), None, n, one_segment("insert", n.heading), one_segment("insert", n.text))
        changes.append(((n.position, 0, 0), by_new[n.id] if n.id in paired_new else new_section))
    anchor = 0
    for o in old_sides:
        if o.id in paired_old:
            anchor = new_by_id[new_id_of[o.id]].position
        else:
            changes.append(((anchor, 1, o.position), SectionChange(frozenset({"removed"}), o, None,
                                                                   one_segment("delete", o.heading), one_segment("delete", o.text))))
    ordered = [change for _, change in sorted(changes, key=lambda item: item[0])]
    ordered = _splits_and_merges(_moved_text(ordered))
    return ChangeSet(new.policy_id, new.site, new.site_name, new.language, new.locale, normalise(old.title),
                     normalise(new.title), tuple(ordered))
