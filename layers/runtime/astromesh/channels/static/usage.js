// Astromesh console, usage view: the tenant's spending by day and by agent (tokens, USD, runs)
// from GET /v1/usage?group_by=day|agent, with the API key typed in the console's bar. It
// refreshes when the key changes, on "Refresh", and each time a run in the console ends.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    key: $("api-key"), from: $("usage-from"), to: $("usage-to"), refresh: $("usage-refresh"),
    total: $("usage-total"), byDay: $("usage-by-day"), byAgent: $("usage-by-agent"),
    runStatus: $("run-status"),
  };
  const ENDED = new Set(["succeeded", "failed", "cancelled", "timed_out"]);
  let pending = 0;

  function usd(value) {
    return "$" + (value || 0).toFixed(value && value < 0.01 ? 6 : 4);
  }

  function params(groupBy) {
    const query = new URLSearchParams({ group_by: groupBy });
    if (ui.from.value) query.set("from", ui.from.value);
    if (ui.to.value) query.set("to", ui.to.value);
    return query;
  }

  async function fetchUsage(groupBy) {
    const key = ui.key.value.trim();
    const response = await fetch("/v1/usage?" + params(groupBy), {
      headers: key ? { "x-api-key": key } : {},
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(`${response.status} ${body.detail || response.statusText}`);
    return body;
  }

  function fill(table, body, name) {
    const rows = body.groups.map((group) => {
      const row = document.createElement("tr");
      row.dataset.key = group[name];
      for (const cell of [group[name], group.runs, group.tokens_in, group.tokens_out, usd(group.cost_usd)]) {
        const td = document.createElement("td");
        td.textContent = String(cell);
        row.appendChild(td);
      }
      return row;
    });
    table.querySelector("tbody").replaceChildren(...rows);
  }

  async function load() {
    const mine = ++pending;
    try {
      const [byDay, byAgent] = await Promise.all([fetchUsage("day"), fetchUsage("agent")]);
      if (mine !== pending) return; // a newer refresh is on its way
      fill(ui.byDay, byDay, "day");
      fill(ui.byAgent, byAgent, "agent");
      const t = byDay.total;
      ui.total.textContent = `tenant ${byDay.tenant} · ${t.runs} run(s) · ${t.tokens_in} in / ${t.tokens_out} out · ${usd(t.cost_usd)}`;
      ui.total.className = "muted";
    } catch (err) {
      if (mine !== pending) return;
      ui.total.textContent = "Usage unavailable: " + err.message;
      ui.total.className = "error";
    }
  }

  ui.key.addEventListener("change", load);
  ui.refresh.addEventListener("click", load);
  ui.from.addEventListener("change", load);
  ui.to.addEventListener("change", load);
  // A run that ends in the console changes the spending: its status pill says when.
  new MutationObserver(() => {
    if (ENDED.has(ui.runStatus.textContent.trim())) load();
  }).observe(ui.runStatus, { childList: true, characterData: true, subtree: true });
  load();
})();
