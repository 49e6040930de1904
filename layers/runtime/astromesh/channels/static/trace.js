// Astromesh console, trace waterfall: when a run in the console ends, its trace from
// GET /v1/traces/{run_id} (the spans kept with the run and its child runs) drawn as a
// waterfall: one row per span, indented under its parent, a bar placed on the run's timeline,
// with its duration, tokens, cost, error, and a tool call's arguments and result when message
// content capture is on (the server only has them then, already redacted).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    key: $("api-key"), runId: $("run-id"), runStatus: $("run-status"),
    waterfall: $("waterfall"), summary: $("trace-summary"),
  };
  const ENDED = new Set(["succeeded", "failed", "cancelled", "timed_out"]);
  let shown = null;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function usd(value) {
    return "$" + (value || 0).toFixed(value && value < 0.01 ? 6 : 4);
  }

  function label(span) {
    const a = span.attributes || {};
    const parts = [`${span.duration_ms.toFixed(1)} ms`];
    if (a["gen_ai.usage.input_tokens"] !== undefined || a["gen_ai.usage.output_tokens"] !== undefined) {
      parts.push(`${a["gen_ai.usage.input_tokens"] ?? 0}/${a["gen_ai.usage.output_tokens"] ?? 0} tok`);
    }
    if (a["astromesh.cost.usd"]) parts.push(usd(a["astromesh.cost.usd"]));
    if (span.status === "error") parts.push("✗ " + (a["error.type"] || "error"));
    return parts.join(" · ");
  }

  function rows(spans, depth, start, total, out) {
    for (const span of spans) {
      const row = el("li", "span" + (span.status === "error" ? " error" : ""));
      row.dataset.name = span.name;
      row.dataset.depth = String(depth);
      const head = el("div", "span-head");
      const name = el("span", "span-name", span.name);
      name.style.paddingLeft = `${depth * 12}px`;
      const track = el("span", "span-track");
      const bar = el("span", "span-bar");
      bar.style.left = `${Math.max(0, (span.start_time - start) / total) * 100}%`;
      bar.style.width = `${Math.max(0.5, (span.duration_ms / 1000 / total) * 100)}%`;
      track.appendChild(bar);
      head.append(name, track, el("span", "span-label", label(span)));
      row.appendChild(head);
      const a = span.attributes || {};
      const io = [["arguments", a["gen_ai.tool.call.arguments"]], ["result", a["gen_ai.tool.call.result"]],
        ["input", a["gen_ai.input.messages"]], ["output", a["gen_ai.output.messages"]]]
        .filter(([, value]) => value !== undefined);
      if (io.length) {
        const details = el("details", "span-io");
        details.appendChild(el("summary", "", "content"));
        for (const [key, value] of io) details.appendChild(el("pre", "", `${key}: ${value}`));
        row.appendChild(details);
      }
      out.push(row);
      rows(span.children || [], depth + 1, start, total, out);
    }
  }

  function draw(trace) {
    const spans = trace.spans || [];
    const all = [];
    (function walk(list) { for (const s of list) { all.push(s); walk(s.children || []); } })(spans);
    const start = Math.min(...all.map((s) => s.start_time));
    const end = Math.max(...all.map((s) => s.end_time));
    const total = Math.max(end - start, 0.000001);
    const out = [];
    rows(spans, 0, start, total, out);
    ui.waterfall.replaceChildren(...out);
    ui.summary.textContent = `trace ${trace.trace_id} · ${trace.span_count} span(s) · ` +
      `${((end - start) * 1000).toFixed(0)} ms · ${trace.tokens_in} in / ${trace.tokens_out} out · ${usd(trace.cost)}` +
      (trace.dropped_spans ? ` · ${trace.dropped_spans} not kept` : "");
    ui.summary.className = "muted";
  }

  async function load(runId) {
    const key = ui.key.value.trim();
    const response = await fetch(`/v1/traces/${encodeURIComponent(runId)}`, {
      headers: key ? { "x-api-key": key } : {},
    }).catch(() => null);
    if (runId !== shown) return; // another run ended meanwhile
    if (!response || !response.ok) {
      ui.summary.textContent = "Trace unavailable" + (response ? `: ${response.status}` : "");
      ui.summary.className = "error";
      return;
    }
    draw(await response.json());
  }

  new MutationObserver(() => {
    const runId = ui.runId.textContent.trim();
    if (!ENDED.has(ui.runStatus.textContent.trim()) || !runId.startsWith("run_") || runId === shown) return;
    shown = runId;
    load(runId);
  }).observe(ui.runStatus, { childList: true, characterData: true, subtree: true });
})();
