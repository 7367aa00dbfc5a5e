"""Which samples of the given webdataset shards a run must read, and which items of theirs are gone.

Per shard, against the store's record of it (:mod:`cir.store.item_meta`):

* size and mtime as recorded: the shard is not opened, its items are unchanged;
* stat changed, same sha256: the record's stat is refreshed, its items are unchanged (the file was only touched);
* new content (or never recorded in full): its headers are listed and every sample is read and hashed; a sample
  whose image has the stored hash only gets its metadata (and caption / JSON) refreshed, others are embedded;
  keys no longer in the shard are removed. A shard that is truncated or damaged is read up to the damage and
  nothing of it is removed (what lies past the damage is unknown);
* gone (a path a pattern names, or one indexed before): its items are removed.

A shard is recorded only after the run's compaction, so a run killed before then reads it again (hashing, not
embedding, the samples it committed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cir.encode.pipeline import FileJob
from cir.errors import SourceError
from cir.ingest.hashing import sha256_file
from cir.ingest.shards import SEPARATOR, identity, list_shard
from cir.ingest.sources import Source
from cir.store.item_meta import ShardRecord
from cir.store.writer import KnownItem


@dataclass
class ShardPlan:
    jobs: list[FileJob] = field(default_factory=list)  # samples to read (and embed unless their hash is known)
    unchanged: int = 0  # items of shards that were not opened
    kept_unreadable: int = 0  # items kept because their shard could not be read (in full)
    remove_ids: set[int] = field(default_factory=set)  # items whose sample or shard is gone
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (shard or identity, reason)
    records: list[ShardRecord] = field(default_factory=list)  # to record once the run is committed
    forget: list[str] = field(default_factory=list)  # vanished shards whose record goes


def plan_shards(sources: list[Source], known: dict[str, KnownItem], recorded: dict[str, ShardRecord]) -> ShardPlan:
    plan = ShardPlan()
    shards = [s for s in sources if s.kind == "shard"]
    if not shards:
        return plan
    by_shard: dict[str, dict[str, KnownItem]] = {}
    for path, item in known.items():
        if SEPARATOR in path:
            by_shard.setdefault(path.rpartition(SEPARATOR)[0], {})[path] = item
    for source in dict.fromkeys(shards):
        _plan_one(source.root, by_shard.get(source.root, {}), recorded.get(source.root), plan)
    return plan


def _plan_one(shard: str, items: dict[str, KnownItem], record: ShardRecord | None, plan: ShardPlan) -> None:
    try:
        st = os.stat(shard)
    except FileNotFoundError:
        plan.remove_ids.update(item.id for item in items.values())
        if record is not None:
            plan.forget.append(shard)
        if not items:
            plan.skipped.append((shard, "shard not found (nothing of it is in the store)"))
        return
    except OSError as exc:
        plan.skipped.append((shard, f"cannot read the shard: {exc.strerror or exc}; the items indexed from it are kept"))
        plan.kept_unreadable += len(items)
        return
    if record is not None and (record.size, record.mtime_ns) == (st.st_size, st.st_mtime_ns):
        plan.unchanged += len(items)
        return
    try:
        digest = sha256_file(shard)
    except OSError as exc:
        plan.skipped.append((shard, f"cannot read the shard: {exc.strerror or exc}; the items indexed from it are kept"))
        plan.kept_unreadable += len(items)
        return
    if record is not None and record.sha256 == digest:
        plan.unchanged += len(items)
        plan.records.append(ShardRecord(shard, st.st_size, st.st_mtime_ns, digest, record.items))
        return
    try:
        listing = list_shard(shard)
    except SourceError as exc:
        plan.skipped.append((shard, f"{exc}; the items indexed from it are kept"))
        plan.kept_unreadable += len(items)
        return
    plan.skipped.extend(listing.skipped)
    listed = set()
    for sample in listing.samples:
        path = identity(shard, sample.key)
        listed.add(path)
        old = items.get(path)
        plan.jobs.append(FileJob(path, shard, old.sha256 if old is not None else None, sample))
    gone = [item.id for path, item in items.items() if path not in listed]
    if listing.complete:
        plan.remove_ids.update(gone)
        plan.records.append(ShardRecord(shard, st.st_size, st.st_mtime_ns, digest, len(listing.samples)))
    else:
        plan.skipped.append((shard, f"{listing.problem or 'the shard is truncated'}; {len(listing.samples)} samples "
                                    f"read, {len(gone)} items indexed from it before and not found now are kept"))
        plan.kept_unreadable += len(gone)
