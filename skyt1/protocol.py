"""One way to open and finish a phase.

    def run(recipe, run, *, force=False):
        return run_phase("reformat", recipe, run, _reformat, force=force)

    def _reformat(p: PhaseRun) -> dict:   # called only when there is work: a complete phase is skipped
        src = p.upstream("distill")      # the upstream phase directory (it is complete)
        ...                              # write records through p.dir (resume: skip p.dir.ids())
        return p.finish(counts=..., pending=failed, what="record(s)")

(`with open_phase(...) as p:` is the same without the skip: `p.done` is the manifest of a complete phase.)

Opening a phase (what every phase used to repeat):
1. Its inputs (`skyt1.phases` table): every upstream output it reads must be complete; their digests are
   this phase's input digests.
2. Its digest: the recipe knobs, prompt versions and command options the table declares for it.
3. Complete with the same digest and inputs: `p.done` is the manifest, and nothing else happens.
4. Otherwise it takes the phase's lock (one writer per phase directory, or per shard), and removes what
   killed writes left behind.
5. `--force` clears the directory. Output written under other knobs is never continued: the phase refuses,
   naming each knob that changed and the choices (`--force`, or the recipe that wrote it). Output computed
   from upstream results that have changed since (an upstream phase was redone) is discarded, with a warning.
6. It records in `_STARTED.json` what the output is being written under, and traces every recipe knob the
   phase reads (a read the table does not declare is named; an error under `SKYT1_STRICT_KNOBS=1`).

Finishing: `p.finish(...)` writes `_DONE.json` when nothing is pending; otherwise `_PARTIAL.json` (downstream
phases refuse to start, and the same command retries the pending items), or, for one shard of a sharded
phase whose own share is done while others still work, a `_SHARD-<tag>.json` note. Whichever shard finishes
last writes the manifest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from skyt1 import phases
from skyt1.recipe import Recipe, trace_reads
from skyt1.store import PARTIAL, PhaseDir, PhaseLock, RunDir, StoreError

STARTED = "_STARTED.json"
log = logging.getLogger(__name__)


class PhaseError(RuntimeError):
    """A phase cannot run; the message says what to do."""


# ------------------------------------------------------------------------------------------- shards


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`: the items whose id hash falls in bucket `index` (the same split on every
    machine and every run, so N jobs share one phase without overlap)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, value: str | None) -> Shard:
        """"I/N" -> Shard(I, N) with 0 <= I < N; None or "" -> the whole phase."""
        if not value:
            return cls()
        try:
            i, n = (int(x) for x in value.split("/"))
        except ValueError:
            raise PhaseError(f"--shard {value!r}: expected I/N, e.g. 0/4 for the first of four machines") from None
        if n < 1 or not 0 <= i < n:
            raise PhaseError(f"--shard {value!r}: need 0 <= I < N")
        return cls(i, n)

    @property
    def split(self) -> bool:
        return self.count > 1

    @property
    def tag(self) -> str:
        return f"s{self.index}of{self.count}" if self.split else ""

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def __contains__(self, item_id: str) -> bool:
        return not self.split or int(hashlib.sha256(item_id.encode()).hexdigest()[:12], 16) % self.count == self.index


# ------------------------------------------------------------------------------------------- opening


@dataclass
class PhaseRun:
    """An open phase: where it writes, what it is computed from, and how it finishes."""

    name: str
    recipe: Recipe
    run: RunDir
    dir: PhaseDir
    digest: str
    inputs: dict[str, str]
    knobs: dict[str, Any]
    prompts: dict[str, str]
    extras: dict[str, Any]
    shard: Shard = Shard()
    done: dict | None = None  # the manifest, when the phase is complete and nothing is to be done
    started_at: float = field(default_factory=time.time)
    reads: set[str] = field(default_factory=set)
    lock: PhaseLock | None = None
    upstreams: dict[str, PhaseDir] = field(default_factory=dict)

    def upstream(self, name: str) -> PhaseDir:
        return self.upstreams[name]

    def quarantine(self, records: Iterable[dict], reason_key: str = "reason") -> int:
        """Write bad input records (each with an id and a reason) to the `quarantine` stream, once each;
        return how many the stream holds."""
        seen = self.dir.ids("quarantine")
        with self.dir.writer("quarantine", tag=self.shard.tag) as w:
            for r in records:
                if r["id"] not in seen:
                    assert reason_key in r, f"quarantined record {r['id']} without a {reason_key}"
                    w.write(r)
                    seen.add(r["id"])
        return len(seen)

    def finish(self, *, counts: dict[str, Any], config: dict[str, Any] | None = None, pending: int = 0,
               what: str = "item(s)", shard_pending: int | None = None, outputs: dict[str, str] | None = None,
               cost_usd: float | None = None, extra: dict[str, Any] | None = None, see: str | None = None) -> dict:
        """The manifest when nothing is `pending`; else a `_PARTIAL.json` summary (or this shard's note when
        its own `shard_pending` share is done)."""
        self._check_reads()
        if self.lock is not None and self.lock.lost:
            raise PhaseError(f"{self.dir.uri}: another process took this phase's lock while it ran; its output "
                             "was not marked complete. Run the same command again once the other one ended")
        if pending == 0:
            if self.dir.exists(PARTIAL):
                self.dir.delete(PARTIAL)
            return self.dir.write_manifest(
                recipe_digest=self.digest, inputs=self.inputs, counts=counts, started_at=self.started_at,
                outputs=outputs, config=config, cost_usd=cost_usd,
                extra={"knobs": self.knobs, "prompts": self.prompts, "extras": self.extras,
                       "reads": sorted(self.reads), **(extra or {})})
        if self.shard.split and shard_pending == 0:
            note = {"shard": str(self.shard), "counts": counts, "finished_at": time.time()}
            self.dir.write_json(f"_SHARD-{self.shard.tag}.json", note)
            return {"phase": self.name, "complete": False, "shard": note, "counts": counts,
                    "message": f"shard {self.shard} done; {pending} {what} of other shards still missing (the "
                               "last shard to finish writes the phase manifest)"}
        summary = {"phase": self.name, "complete": False, "recipe_digest": self.digest, "inputs": self.inputs,
                   "counts": counts, "config": config or {}, "cost_usd": cost_usd,
                   "message": f"{pending} {what} failed after retries (see {see or self.dir.uri + '/failed'}); run "
                              "the same command again to retry them"}
        self.dir.write_json(PARTIAL, summary)
        return summary

    def _check_reads(self) -> None:
        missing = phases.undeclared(self.recipe, self.name, self.reads)
        if not missing:
            return
        msg = (f"phase {self.name} read recipe knob(s) {missing} that skyt1.phases does not declare for it: "
               "changing them would not re-run it (a bug; please report it)")
        if os.environ.get("SKYT1_STRICT_KNOBS"):
            raise PhaseError(msg)
        log.error(msg)


def upstream_inputs(run: RunDir, specs: Iterable[str]) -> tuple[dict[str, str], dict[str, PhaseDir]]:
    """{phase: output digest} of the upstream outputs `specs` ("phase:output"); each must be complete."""
    inputs, dirs = {}, {}
    for spec in specs:
        name, _, output = spec.partition(":")
        ph = run.phase(name)
        m = ph.manifest()
        if m is None:
            partial = ph.partial()
            why = f"is incomplete ({partial.get('message', '')})" if partial else "is not complete"
            raise PhaseError(f"{ph.uri} {why}: run `skyt1 {name}` with the same --run-dir first")
        outputs = m.get("outputs") if isinstance(m.get("outputs"), dict) else {}
        inputs[name] = outputs.get(output, "empty")
        dirs[name] = ph
    return inputs, dirs


@contextmanager
def open_phase(name: str, recipe: Recipe, run: RunDir, *, force: bool = False, needs: Iterable[str] | None = None,
               inputs: dict[str, str] | None = None, extras: dict[str, Any] | None = None, shard: Shard = Shard(),
               writer: bool = True, command: str = "") -> Iterator[PhaseRun]:
    """Open phase `name` of `run` (see the module docstring).

    needs: which of the table's inputs this run reads (default: all); inputs: further input digests (e.g. a
    model named by the recipe); extras: command options that change the output; writer: False on a node
    that only helps (a multi-node training worker): no lock, no bookkeeping."""
    spec = phases.get(name)
    if shard.split and not spec.shardable:
        raise PhaseError(f"{name} cannot be split with --shard")
    if force and shard.split:
        raise PhaseError(f"--force with --shard {shard} would discard the other shards' work; run "
                         f"`skyt1 {name} --force` once without --shard, or delete {run.phase(name).uri} first")
    extras = extras or {}
    upstream_digests, dirs = upstream_inputs(run, spec.needs(recipe) if needs is None else needs)
    all_inputs = {**upstream_digests, **(inputs or {})}
    ph = run.phase(name)
    p = PhaseRun(name, recipe, run, ph, phases.config_digest(recipe, name, **extras), all_inputs,
                 phases.knob_values(recipe, name), phases.prompt_versions(recipe, name), extras, shard,
                 upstreams=dirs)
    if not force and ph.is_complete(p.digest, p.inputs):
        p.done = ph.manifest()
        yield p
        return
    if not writer:
        yield p
        return
    p.lock = ph.lock(tag=shard.tag, command=command or " ".join(os.path.basename(a) for a in sys.argv[:2]))
    p.lock.acquire()
    try:
        for leftover in ph.sweep():
            log.info("removed %s, left by a write that was killed", leftover)
        _prepare(p, spec, force)
        with trace_reads(recipe) as reads:
            p.reads = reads
            yield p
    finally:
        p.lock.release()


def judge(ph: PhaseDir, spec: phases.Phase, digest: str, inputs: dict[str, str], knobs: dict,
          prompts: dict, extras: dict, shard: Shard = Shard()) -> tuple[str, str]:
    """What opening a phase without --force does with what its directory holds: ("skip", ""), ("run", ""),
    ("resume", ""), ("clear", why) when its output came from other upstream results (or the phase keeps
    nothing between runs), or ("refuse", message) when it was written under other settings."""
    m = ph.manifest()
    if m is not None and m.get("recipe_digest") == digest and m.get("inputs") == inputs:
        return "skip", ""
    state = ph._state(STARTED) or m
    held = [f for f in ph.files() if not f.startswith("_LOCK") and f != STARTED]
    if state is None or not held:
        return "run", ""
    same_settings, same_inputs = state.get("recipe_digest") == digest, state.get("inputs") == inputs
    if not spec.resumable:
        return ("run", "") if same_settings and same_inputs else ("clear", "it is redone from its inputs each time")
    if not same_settings:
        return "refuse", _changed_message(ph, spec.name, state, knobs, prompts, extras)
    if not same_inputs:
        what = _inputs_diff(state.get("inputs") or {}, inputs)
        if shard.split:
            return "refuse", (f"{ph.uri} was computed from other upstream results ({what}); run "
                              f"`skyt1 {spec.name} --force` once without --shard to redo it")
        return "clear", f"upstream results changed since it was written ({what})"
    return "resume", ""


def run_phase(name: str, recipe: Recipe, run: RunDir, body: Callable[[PhaseRun], dict], **opening: Any) -> dict:
    """Open phase `name` (`open_phase` takes `opening`), return its manifest when it is complete, else
    `body(p)`, which does the work and returns `p.finish(...)`."""
    with open_phase(name, recipe, run, **opening) as p:
        return p.done if p.done else body(p)


def _prepare(p: PhaseRun, spec: phases.Phase, force: bool) -> None:
    """Clear, refuse or keep what the phase directory holds; then record what it is written under."""
    ph = p.dir
    keep = [p.lock.name] if p.lock else []
    if force:
        ph.clear(keep=keep)
    else:
        action, why = judge(ph, spec, p.digest, p.inputs, p.knobs, p.prompts, p.extras, p.shard)
        if action == "refuse":
            raise PhaseError(why)
        if action == "clear":
            if spec.resumable:
                log.warning("%s: %s: discarding its output and redoing it", ph.uri, why)
            ph.clear(keep=keep)
    previous = ph._state(STARTED)
    if previous and previous.get("recipe_digest") == p.digest and previous.get("inputs") == p.inputs:
        return  # resuming (or another shard started it): keep the first start
    ph.write_json(STARTED, {"phase": p.name, "recipe_digest": p.digest, "inputs": p.inputs, "knobs": p.knobs,
                            "prompts": p.prompts, "extras": p.extras, "started_at": p.started_at})


def plan(recipe: Recipe, run: RunDir, names: Iterable[str]) -> list[dict]:
    """What running `names` in order would do, without doing anything: for each phase its action (skip, run,
    resume, redo, refuse, or run after an upstream phase), and why. A dry run of `reproduce --local`."""
    out, redone = [], set()
    for name in phases.in_order(list(names)):
        spec = phases.get(name)
        needs = spec.needs(recipe)
        waiting = [u.split(":")[0] for u in needs if u.split(":")[0] in redone]
        missing = [u.split(":")[0] for u in needs if run.phase(u.split(":")[0]).manifest() is None]
        entry = {"phase": name, "digest": phases.config_digest(recipe, name)}
        if _still_valid(run, name, entry["digest"], redone):
            entry.update(action="skip", why="")
        elif waiting or missing:
            blocked = [u for u in missing if u not in waiting and u not in names]
            entry.update(action="blocked" if blocked else "run",
                         why=(f"needs {', '.join(blocked)} complete first" if blocked
                              else f"after {', '.join(dict.fromkeys(waiting + missing))}"))
        else:
            inputs, _ = upstream_inputs(run, needs)
            if name == "report":
                inputs = {}
            action, why = judge(run.phase(name), spec, entry["digest"], inputs, phases.knob_values(recipe, name),
                                phases.prompt_versions(recipe, name), {})
            entry.update(action={"clear": "redo"}.get(action, action), why=why)
        if entry["action"] != "skip":
            redone.add(name)
        out.append(entry)
    return out


def _still_valid(run: RunDir, name: str, digest: str, redone: set[str]) -> bool:
    """A phase's manifest has this digest, and each input it recorded is still an output of its upstream
    (where that upstream's manifest exists and is not being redone)."""
    m = run.phase(name).manifest()
    if m is None or m.get("recipe_digest") != digest:
        return False
    for upstream, value in (m.get("inputs") or {}).items():
        if upstream in redone:
            return False
        up = run.phase(upstream).manifest() if upstream in phases.BY_NAME else None
        if up is not None and name != "report" and value not in (up.get("outputs") or {}).values():
            return False
    return True


def _inputs_diff(old: dict, new: dict) -> str:
    return ", ".join(f"{k} {old.get(k, '-')} -> {new.get(k, '-')}" for k in sorted(set(old) | set(new))
                     if old.get(k) != new.get(k))


def _changed_message(ph: PhaseDir, name: str, state: dict, knobs: dict, prompts: dict, extras: dict) -> str:
    changes = phases.diff(state.get("knobs") or {}, knobs) if "knobs" in state else []
    changes += [f"prompt {k}: version {v} -> {prompts.get(k, '<unused>')}"
                for k, v in (state.get("prompts") or {}).items() if prompts.get(k) != v]
    old_extras = state.get("extras") or {}
    changes += [f"--{k.replace('_', '-')}: {old_extras.get(k)!r} -> {extras.get(k)!r}"
                for k in sorted(set(old_extras) | set(extras)) if old_extras.get(k) != extras.get(k)]
    what = ("\n  " + "\n  ".join(changes)) if changes else " (written by another configuration or an older skyt1)"
    return (f"{ph.uri} holds output written under other settings than this recipe's:{what}\n"
            f"Continuing would mix the two. Pass --force to discard that output and redo {name}, or run with "
            f"the recipe that wrote it (its settings are in {ph.where(STARTED)}).")


__all__ = ["PhaseError", "PhaseRun", "Shard", "StoreError", "open_phase", "plan", "run_phase", "upstream_inputs",
           "STARTED"]
