"""The run report: what each phase did, what it cost, how training and evaluation went.

`write_report(run)` reads only the run directory (phase manifests, rejected/removed streams, the loss log,
the eval summary) and writes `RUN/report/report.md` and a self-contained `RUN/report/report.html` (inline
CSS and SVG, nothing fetched at view time). A phase that has not run is shown as "not run". Local stand-ins
(transformers instead of vLLM, a loopback server instead of the OpenAI API, generated demo problems) are
named from the recorded configuration, so a demo result is never mistaken for the real recipe's.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from html import escape
from typing import Any

from skyt1.engines import is_loopback
from skyt1.phases import NAMES as PHASES
from skyt1.protocol import PhaseRun, run_phase
from skyt1.recipe import Recipe
from skyt1.report_assets import svg
from skyt1.report_assets.style import CSS
from skyt1.store import PhaseDir, RunDir, StoreError, canonical_digest, jsonl_lines

NAME = "report"
PIPELINE = tuple(p for p in PHASES if p != NAME)
REJECT_STREAMS = ("rejected", "quarantine", "removed")
RECORD_STREAMS = ("records", *REJECT_STREAMS)
REJECT_KEYS = ("rejected", "rejected_by_reason", "removed")  # manifest counts holding {reason: n}


# ------------------------------------------------------------------------------------------- collecting


@dataclass
class PhaseInfo:
    name: str
    status: str  # complete | incomplete | not run
    manifest: dict | None = None
    records_so_far: int = 0
    rejections: dict[str, int] = field(default_factory=dict)

    @property
    def counts(self) -> dict:
        return (self.manifest or {}).get("counts") or {}

    @property
    def wall_time_s(self) -> float | None:
        return (self.manifest or {}).get("wall_time_s")

    @property
    def cost_usd(self) -> float | None:
        return (self.manifest or {}).get("cost_usd")

    @property
    def config(self) -> dict:
        return (self.manifest or {}).get("config") or {}


@dataclass
class ReportData:
    uri: str
    generated_at: float
    phases: list[PhaseInfo]
    recipe: dict | None
    recipe_digest: str | None
    standins: list[str]
    token_lengths: dict[str, list[int]]
    token_notes: list[str]
    loss: list[tuple[float, float]]
    eval_rows: list[dict]
    eval_skipped: dict[str, str]
    eval_config: dict
    effect: list = field(default_factory=list)  # skyt1.report_demo sections: what the recipe did (base vs trained)


def _flat_counts(counts: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in counts.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flat_counts(v, key + ".")
        else:
            out.append((key, v))
    return out


def _reason_of(record: dict) -> str:
    for key in ("reason", "status"):
        if isinstance(record.get(key), str):
            return record[key]
    verdict = record.get("verdict")
    if isinstance(verdict, dict) and isinstance(verdict.get("status"), str):
        return verdict["status"]
    return "unspecified"


def _rejections(ph: PhaseDir, manifest: dict | None) -> dict[str, int]:
    """Rejected/removed/quarantined records by reason: the manifest's own breakdown when it has one,
    otherwise counted from the streams themselves."""
    counts = (manifest or {}).get("counts") or {}
    for key in REJECT_KEYS:
        value = counts.get(key)
        if isinstance(value, dict) and value and all(isinstance(v, int) for v in value.values()):
            return {reason: n for reason, n in value.items() if n}
    found: Counter[str] = Counter()
    for stream in REJECT_STREAMS:
        if stream in ph.streams():
            for r in ph.records(stream):
                found[f"{stream}: {_reason_of(r)}" if stream != "rejected" else _reason_of(r)] += 1
    return dict(found)


def _phase_info(run: RunDir, name: str) -> PhaseInfo:
    ph = run.phase(name)
    manifest = ph.manifest()
    if manifest is not None:
        return PhaseInfo(name, "complete", manifest, rejections=_rejections(ph, manifest))
    # Only record streams: a phase may keep other JSONL files in subdirectories (trainer logs, eval samples).
    streams = [s for s in ph.streams() if s in RECORD_STREAMS]
    if streams or ph.backend.list(name):
        return PhaseInfo(name, "incomplete", records_so_far=sum(ph.count(s) for s in streams))
    return PhaseInfo(name, "not run")


def _read_jsonl(ph: PhaseDir, name: str) -> list[dict]:
    try:
        text = ph.read_text(name)
    except FileNotFoundError:
        return []
    out = []
    for line in jsonl_lines(text):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line being written while we read; the rest of the curve still stands
    return out


def _loss_curve(run: RunDir, train: PhaseInfo) -> list[tuple[float, float]]:
    """(step, loss) from `train/loss.jsonl`, which grows while training runs (the manifest's copy once done)."""
    rows = _read_jsonl(run.phase("train"), "loss.jsonl")
    points = [(r["step"], r["loss"]) for r in rows if "step" in r and isinstance(r.get("loss"), int | float)]
    if not points and train.manifest:
        points = [tuple(p) for p in train.manifest.get("loss_curve", [])]
    return sorted((float(step), float(loss)) for step, loss in points if math.isfinite(loss))


def _training_lengths(run: RunDir, recipe: Recipe | None) -> tuple[list[int], str] | None:
    """Token length of every training row, counted as assemble counts them (the base model's tokenizer when
    it is a local directory, else whitespace words)."""
    ph = run.phase("assemble")
    if not ph.exists("train.json"):
        return None
    rows = json.loads(ph.read_text("train.json"))
    texts = [r.get("system", "") + "\n" + "\n".join(t["value"] for t in r.get("conversations", [])) for r in rows]
    if recipe is not None:
        from skyt1.curation.assemble import token_lengths

        return token_lengths(recipe, texts)
    return [len(t.split()) for t in texts], "estimate:whitespace words (recipe unknown)"


def _cutoff_notes(run: RunDir) -> list[str]:
    ph = run.phase("assemble")
    stats = ph.read_json("stats.json") if ph.exists("stats.json") else {}
    tokens = stats.get("tokens") if isinstance(stats, dict) else None
    if not isinstance(tokens, dict) or not isinstance(tokens.get("over_cutoff"), int):
        return []
    return [f"{tokens['over_cutoff']:,} of {tokens.get('count', '?'):,} training rows are longer than "
            f"cutoff_len {tokens.get('cutoff_len', '?'):,} and are truncated in training."]


def _token_lengths(run: RunDir, phases: dict[str, PhaseInfo], recipe: Recipe | None) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    if phases["distill"].status != "not run":
        teacher = [r["completion_tokens"] for r in run.phase("distill").records()
                   if isinstance(r.get("completion_tokens"), int)]
        if teacher:
            out["teacher traces (distill, completion tokens)"] = teacher
    training = _training_lengths(run, recipe)
    if training and training[0]:
        lengths, method = training
        how = "tokens" if method.startswith("tokenizer:") else method.split(":", 1)[-1].split(" (")[0]
        out[f"training rows (assemble, {how})"] = lengths
    return out


def _eval_rows(summary: dict | None) -> tuple[list[dict], dict[str, str], dict]:
    """Rows {benchmark, accuracy (%), stderr (%), n, problems, complete, pass_at_k} from the summary.json
    that `skyt1 eval` writes, the benchmarks it skipped (with why), and its configurations."""
    if not summary:
        return [], {}, {}
    rows = []
    for name, entry in summary.get("benchmarks", {}).items():
        scores = entry["scores"]
        rows.append({
            "benchmark": name,
            "accuracy": 100.0 * scores["accuracy"],
            "stderr": 100.0 * (scores.get("stderr") or 0.0),
            "n": scores.get("n"),
            "problems": scores.get("problems"),
            "complete": entry.get("complete", True),
            "pass_at_k": scores.get("pass_at_k", {}),
        })
    return rows, summary.get("skipped", {}), summary.get("configs", {})


def _walk(obj: Any, path: tuple = ()):
    if isinstance(obj, dict):
        yield path, obj
        for k, v in obj.items():
            yield from _walk(v, path + (str(k),))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, path + (str(i),))


def _standins(configs: dict[str, Any]) -> list[str]:
    """Name every local stand-in recorded in the configuration: the honest footnote of a demo run.
    Each stand-in is listed once, with every place (phase manifest or recipe section) that used it."""
    found: dict[str, list[str]] = {}
    for where, cfg in configs.items():
        for path, node in _walk(cfg):
            here = ".".join((() if where == "recipe" else (where,)) + path)
            notes = []
            base_url = node.get("base_url")
            if isinstance(base_url, str) and is_loopback(base_url):
                notes.append(f"a local OpenAI-compatible server at {base_url} (model {node.get('model', '?')!r}) "
                             "stood in for the OpenAI API (GPT-4o-mini in the published recipe)")
            if node.get("backend") == "hf":
                notes.append(f"transformers on this machine (hf backend, model {node.get('model', '?')!r}) "
                             "stood in for vLLM on GPUs")
            if node.get("dataset") == "demo":
                notes.append("problems generated by skyt1.data.demo stood in for NuminaMath / APPS / TACO")
            if node.get("mode") == "answer" and "max_attempts" in node:
                notes.append("code that boxes each sample's stated final answer into the solution section stood "
                             "in for GPT-4o-mini's rewrite of the trace (a 135M model cannot rewrite one)")
            if node.get("finetuning_type") in ("freeze", "lora") and "base_model" in node:
                notes.append(f"{node['finetuning_type']} fine-tuning (model {node.get('base_model')!r}) stood in "
                             "for full fine-tuning")
            if "smollm2" in str(node.get("base_model", "")).lower():
                notes.append("SmolLM2-135M-Instruct stood in for QwQ-32B-Preview (teacher) and "
                             "Qwen2.5-32B-Instruct (student)")
            if node.get("deepspeed") == "none" and "base_model" in node:
                notes.append(f"training without DeepSpeed (model {node.get('base_model')!r}, "
                             f"{node.get('gpus_per_node', '?')} device(s)) stood in for ZeRO-3 on 8 GPUs")
            for note in notes:
                places = found.setdefault(note, [])
                if here and here not in places:
                    places.append(here)
    return [f"{note} [{', '.join(places)}]" if places else note for note, places in found.items()]


def _find_recipe(run: RunDir, recipe: Recipe | None) -> tuple[dict | None, str | None]:
    if recipe is not None:
        return recipe.model_dump(mode="json"), recipe.digest()
    ph = run.phase(NAME)
    if ph.exists("recipe.json"):
        saved = ph.read_json("recipe.json")
        return saved.get("recipe"), saved.get("digest")
    return None, None


def collect(run: RunDir, recipe: Recipe | None = None) -> ReportData:
    from skyt1 import report_demo  # it builds its sections from the block types below
    infos = {name: _phase_info(run, name) for name in PIPELINE}
    recipe_dump, digest = _find_recipe(run, recipe)
    if recipe is None and recipe_dump is not None:
        recipe = Recipe.model_validate(recipe_dump)
    configs: dict[str, Any] = {name: info.config for name, info in infos.items() if info.manifest}
    if recipe_dump:
        configs["recipe"] = recipe_dump
    summary = None
    eval_ph = run.phase("eval")
    if eval_ph.exists("summary.json"):
        summary = eval_ph.read_json("summary.json")
    eval_rows, eval_skipped, eval_config = _eval_rows(summary)
    return ReportData(
        uri=run.uri,
        generated_at=time.time(),
        phases=list(infos.values()),
        recipe=recipe_dump,
        recipe_digest=digest,
        standins=_standins(configs),
        token_lengths=_token_lengths(run, infos, recipe),
        token_notes=_cutoff_notes(run),
        loss=_loss_curve(run, infos["train"]),
        eval_rows=eval_rows,
        eval_skipped=eval_skipped,
        eval_config=eval_config or infos["eval"].config,
        effect=report_demo.collect(run),
    )


# ------------------------------------------------------------------------------------------- sections
# The report is a list of sections, each a list of blocks; the Markdown and the HTML renderer walk the same
# sections, so a new section is written once (`sections()`), and each renderer knows only the block kinds.


@dataclass
class Cell:
    text: str
    css: str = ""  # HTML class of the cell's text


@dataclass
class Text:
    text: str
    missing: bool = False  # "not run" notes: italic in Markdown, greyed in HTML


@dataclass
class Bullets:
    items: list[str]
    missing: bool = False
    boxed: bool = False  # a highlighted box in HTML (the stand-ins)


@dataclass
class Table:
    header: list[str]
    rows: list[list[str | Cell]]
    numeric: frozenset[int] = frozenset()  # right-aligned columns (HTML)


@dataclass
class Chart:
    svg: str  # HTML only: Markdown shows the numbers next to it


@dataclass
class Code:
    text: str
    summary: str | None = None  # HTML: a collapsed <details> with this summary; Markdown: a caption
    lang: str = "json"
    html_only: bool = False


Block = Text | Bullets | Table | Chart | Code


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block]


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _secs(v: float | None) -> str:
    if v is None:
        return "-"
    if v < 120:
        return f"{v:.1f} s"
    if v < 7200:
        return f"{v / 60:.1f} min"
    return f"{v / 3600:.2f} h"


def _usd(v: float | None) -> str:
    return "-" if v is None else f"${v:,.2f}"


def _count_columns(info: PhaseInfo) -> list[str]:
    """in, out, rejected, and the phase's other top-level counts (nested breakdowns are in Configuration)."""
    if info.status == "incomplete":
        return ["-", f"{info.records_so_far:,} so far", "-", "no manifest yet"]
    c = info.counts
    rejected = c.get("rejected")
    if info.rejections or isinstance(rejected, dict):
        rejected = sum(info.rejections.values())
    other = ", ".join(f"{k}={_num(v)}" for k, v in c.items()
                      if k not in ("in", "out", "rejected") and not isinstance(v, dict | list))
    return [_num(c.get("in")), _num(c.get("out")), _num(rejected),
            other or "-"]


COUNT_HEADER = ["phase", "status", "in", "out", "rejected", "other counts", "wall time", "cost"]


def _totals(data: ReportData) -> tuple[float, float]:
    wall = sum(p.wall_time_s or 0 for p in data.phases)
    cost = sum(p.cost_usd or 0 for p in data.phases)
    return wall, cost


def _no_standins(data: ReportData) -> str:
    if data.recipe is None and not any(p.manifest for p in data.phases):
        return "Nothing has run yet, so no configuration is recorded."
    return "None recorded: the phases that ran used the components the recipe names."


def _stat_line(values: list[int]) -> str:
    s = sorted(values)
    return (f"{len(s):,} rows, min {s[0]:,}, median {s[len(s) // 2]:,}, mean {sum(s) / len(s):,.1f}, "
            f"max {s[-1]:,}")


def _standins_section(data: ReportData) -> Section:
    if data.standins:
        return Section("standins", "Local stand-ins", [
            Text("This run used local stand-ins; its numbers do not measure the published recipe:"),
            Bullets(data.standins, boxed=True)])
    return Section("standins", "Local stand-ins", [Text(_no_standins(data))])


def _phases_section(data: ReportData) -> Section:
    rows = [[p.name, Cell(p.status, f"status-{p.status.replace(' ', '-')}"), *_count_columns(p),
             _secs(p.wall_time_s), _usd(p.cost_usd)] for p in data.phases]
    return Section("phases", "Phases", [Table(COUNT_HEADER, rows, frozenset({2, 3, 4, 6, 7}))])


def _rejections_section(data: ReportData) -> Section:
    rej = [(p.name, reason, n) for p in data.phases for reason, n in sorted(p.rejections.items())]
    if not rej:
        return Section("rejections", "Rejections by reason", [Text("No rejections recorded.", missing=True)])
    return Section("rejections", "Rejections by reason", [
        Chart(svg.hbars([(f"{ph}: {reason}", n) for ph, reason, n in rej], "Rejected records by reason")),
        Table(["phase", "reason", "records"], [[a, b, _num(c)] for a, b, c in rej], frozenset({2}))])


def _tokens_section(data: ReportData) -> Section:
    if not data.token_lengths:
        return Section("tokens", "Token lengths", [Text("No token lengths recorded (distill not run).", missing=True)])
    stats = [f"{name}: {_stat_line(vals)}" for name, vals in data.token_lengths.items()]
    charts = [Chart(svg.histogram(vals, f"Histogram: {name}", "tokens")) for name, vals in data.token_lengths.items()]
    return Section("tokens", "Token lengths", [Bullets(stats + data.token_notes), *charts])


def _loss_section(data: ReportData) -> Section:
    if not data.loss:
        return Section("loss", "Training loss", [Text("Training not run.", missing=True)])
    first, last = data.loss[0], data.loss[-1]
    return Section("loss", "Training loss", [
        Text(f"{len(data.loss)} logged steps; loss {first[1]:.4f} at step {first[0]:g} -> "
             f"{last[1]:.4f} at step {last[0]:g}."),
        Chart(svg.line_chart(data.loss, "Training loss by step", "step", "loss"))])


def _eval_section(data: ReportData) -> Section:
    blocks: list[Block] = []
    if data.eval_rows:
        blocks.append(Chart(svg.error_bars([(r["benchmark"], r["accuracy"], r["stderr"]) for r in data.eval_rows],
                                           "Accuracy by benchmark (± stderr)", "accuracy (%)")))
        blocks.append(Table(
            ["benchmark", "accuracy (%)", "± stderr", "samples/problem", "problems", "pass@k"],
            [[r["benchmark"], f"{r['accuracy']:.1f}", f"{r['stderr']:.1f}", _num(r["n"]), _num(r["problems"]),
              ", ".join(f"{k}={v:.3g}" for k, v in r["pass_at_k"].items()) or "-"] for r in data.eval_rows],
            frozenset({1, 2, 3, 4})))
    elif not data.eval_skipped:
        blocks.append(Text("Evaluation not run.", missing=True))
    if data.eval_skipped:
        blocks.append(Bullets([f"{name}: skipped ({why})" for name, why in data.eval_skipped.items()], missing=True))
    return Section("eval", "Evaluation", blocks)


def _prompts_section(data: ReportData) -> Section:
    """Which prompt (id and version) each phase sent, from its manifest."""
    rows = [[p.name, pid, version] for p in data.phases if p.manifest
            for pid, version in sorted((p.manifest.get("prompts") or {}).items())]
    if not rows:
        return Section("prompts", "Prompts", [Text("No prompt versions recorded.", missing=True)])
    return Section("prompts", "Prompts", [
        Text("The prompt templates each phase sent (skyt1/data/prompts.py), with the version (hash) of their "
             "exact text:"),
        Table(["phase", "prompt", "version"], rows)])


def _config_section(data: ReportData) -> Section:
    done = [p for p in data.phases if p.manifest]
    blocks: list[Block] = [Bullets([
        f"{p.name}: recipe digest {p.manifest.get('recipe_digest', '-')}, inputs "
        f"{json.dumps(p.manifest.get('inputs', {}), sort_keys=True)}, counts {json.dumps(p.counts, sort_keys=True)}"
        for p in done])] if done else []
    for p in done:
        body = {k: p.manifest.get(k) for k in ("recipe_digest", "inputs", "outputs", "counts", "config", "versions")}
        blocks.append(Code(json.dumps(body, indent=2, sort_keys=True),
                           f"{p.name}: recipe digest {p.manifest.get('recipe_digest', '-')}", html_only=True))
    if data.eval_config:
        blocks.append(Code(json.dumps(data.eval_config, indent=2, sort_keys=True), "Evaluation configuration",
                           html_only=True))
    if data.recipe:
        blocks.append(Code(json.dumps(data.recipe, indent=2, sort_keys=True), "Resolved recipe"))
    versions = next((p.manifest.get("versions") for p in done), None)
    if versions:
        blocks.append(Text("Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))))
    return Section("config", "Configuration", blocks)


SECTIONS = (_standins_section, _phases_section, _rejections_section, _tokens_section, _loss_section, _eval_section,
            _prompts_section, _config_section)


def sections(data: ReportData) -> list[Section]:
    """Stand-ins first, then what the recipe did (runs that evaluated the base model too), then the rest."""
    made = [make(data) for make in SECTIONS]
    return made[:1] + data.effect + made[1:]


# ------------------------------------------------------------------------------------------- rendering


def _md_cell(c: str | Cell) -> str:
    return (c.text if isinstance(c, Cell) else c).replace("|", "\\|")


def _md_block(b: Block) -> list[str]:
    if isinstance(b, Text):
        return [f"_{b.text}_" if b.missing else b.text]
    if isinstance(b, Bullets):
        return [f"- {item}" for item in b.items]
    if isinstance(b, Table):
        lines = ["| " + " | ".join(b.header) + " |", "|" + "---|" * len(b.header)]
        return lines + ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
    if isinstance(b, Code) and not b.html_only:
        return ([f"{b.summary}:", ""] if b.summary else []) + [f"```{b.lang}", b.text, "```"]
    return []  # charts and HTML-only details


def render_markdown(data: ReportData) -> str:
    wall, cost = _totals(data)
    out = [f"# skyt1 run report: {data.uri}", ""]
    out.append(f"Generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(data.generated_at))}. "
               f"Recipe: {data.recipe.get('name') if data.recipe else 'unknown'} "
               f"(digest {data.recipe_digest or '-'}). Total wall time {_secs(wall)}, total cost {_usd(cost)}.")
    for section in sections(data):
        out += ["", f"## {section.title}"]
        for block in section.blocks:
            lines = _md_block(block)
            if lines:
                out += ["", *lines]
    return "\n".join(out) + "\n"


def _html_cell(c: str | Cell) -> str:
    if isinstance(c, Cell):
        return f'<span class="{escape(c.css)}">{escape(c.text)}</span>' if c.css else escape(c.text)
    return escape(c)


def _html_block(b: Block) -> str:
    missing = ' class="missing"'
    if isinstance(b, Text):
        return f"<p{missing if b.missing else ''}>{escape(b.text)}</p>"
    if isinstance(b, Bullets):
        items = "".join(f"<li{missing if b.missing else ''}>{escape(i)}</li>" for i in b.items)
        return f'<div class="standins"><ul>{items}</ul></div>' if b.boxed else f"<ul>{items}</ul>"
    if isinstance(b, Table):
        head = "".join(f"<th>{escape(h)}</th>" for h in b.header)
        body = "".join("<tr>" + "".join(f'<td{" class=num" if i in b.numeric else ""}>{_html_cell(c)}</td>'
                                        for i, c in enumerate(row)) + "</tr>" for row in b.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(b, Chart):
        return b.svg
    if isinstance(b, Code):
        return f"<details><summary>{escape(b.summary or '')}</summary><pre>{escape(b.text)}</pre></details>"
    raise TypeError(f"unknown report block {b!r}")


def render_html(data: ReportData) -> str:
    wall, cost = _totals(data)
    e = escape
    parts = [f"<h1>skyt1 run report</h1><p class=meta>Run <code>{e(data.uri)}</code> &middot; generated "
             f"{e(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(data.generated_at)))} &middot; recipe "
             f"<b>{e(str(data.recipe.get('name')) if data.recipe else 'unknown')}</b> (digest "
             f"<code>{e(data.recipe_digest or '-')}</code>) &middot; total wall time {e(_secs(wall))} &middot; "
             f"total cost {e(_usd(cost))}</p>"]
    for section in sections(data):
        parts.append(f'<h2 id="{section.id}">{e(section.title)}</h2>')
        parts += [_html_block(b) for b in section.blocks]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>skyt1 report: {e(data.uri)}'
            f'</title><meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{CSS}</style></head><body><main>\n{body}\n</main></body></html>\n")


# ------------------------------------------------------------------------------------------- writing


def write_report(run: RunDir, recipe: Recipe | None = None) -> ReportData:
    """Render both report files into RUN/report/ and return what they were drawn from."""
    if not run.exists():
        raise StoreError(f"{run.uri}: no such run directory (no phase has written anything there); check the "
                         "path, or run a phase first")
    data = collect(run, recipe)
    ph = run.phase(NAME)
    if recipe is not None:
        ph.write_json("recipe.json", {"recipe": data.recipe, "digest": data.recipe_digest})
    ph.write_text("report.md", render_markdown(data))
    ph.write_text("report.html", render_html(data))
    return data


def _upstream_inputs(run: RunDir) -> dict[str, str]:
    return {name: canonical_digest(m) for name in PIPELINE if (m := run.phase(name).manifest()) is not None}


def run(recipe: Recipe, run: RunDir, *, force: bool = False, **_opts: Any) -> dict:
    """The report phase: redone whenever any upstream manifest (or anything in the recipe) changed."""
    return run_phase(NAME, recipe, run, _report, force=force, needs=(), inputs=_upstream_inputs(run))


def _report(p: PhaseRun) -> dict:
    data = write_report(p.run, p.recipe)
    counts = Counter(info.status for info in data.phases)
    return p.finish(
        counts={"phases_complete": counts["complete"], "phases_incomplete": counts["incomplete"],
                "phases_not_run": counts["not run"], "standins": len(data.standins)},
        outputs={name: canonical_digest(p.dir.read_text(name)) for name in ("report.md", "report.html")},
        config={"files": ["report.md", "report.html"]},
    )
