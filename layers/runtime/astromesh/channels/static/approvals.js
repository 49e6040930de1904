// Astromesh console, approvals: the workflow runs of the key's tenant that wait for a person
// (GET /v1/workflows/approvals), each with its prompt and Approve / Reject buttons
// (POST /v1/workflows/runs/{id}/approve|reject, as the name typed in "Approve as").
// The server decides who may: a developer key, or the role or person the step asks.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    key: $("api-key"), list: $("approvals-list"), status: $("approvals-status"),
    refresh: $("approvals-refresh"), approver: $("approvals-as"), comment: $("approvals-comment"),
  };

  function headers() {
    const key = ui.key.value.trim();
    return { "content-type": "application/json", ...(key ? { "x-api-key": key } : {}) };
  }

  async function call(method, path, body) {
    const response = await fetch(path, {
      method, headers: headers(), body: body ? JSON.stringify(body) : undefined,
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(`${response.status} ${data.detail || response.statusText}`);
    return data;
  }

  function say(text, error) {
    ui.status.textContent = text;
    ui.status.className = error ? "error" : "muted";
  }

  function card(item) {
    const li = document.createElement("li");
    li.className = "approval";
    li.dataset.runId = item.run_id;
    const title = document.createElement("strong");
    title.textContent = `${item.workflow_name} · ${item.step_name}`;
    const prompt = document.createElement("p");
    prompt.className = "prompt";
    prompt.textContent = item.prompt; // text, never HTML: the prompt renders run data
    const meta = document.createElement("p");
    meta.className = "muted";
    meta.textContent = `asks ${item.approver || "any approver"} · since ${item.created_at}` +
      (item.expires_at ? ` · expires ${item.expires_at}` : "");
    const approve = document.createElement("button");
    approve.type = "button";
    approve.className = "approve";
    approve.textContent = "Approve";
    const reject = document.createElement("button");
    reject.type = "button";
    reject.className = "reject";
    reject.textContent = "Reject";
    for (const [button, verb] of [[approve, "approve"], [reject, "reject"]]) {
      button.addEventListener("click", () => decide(item, verb));
    }
    li.append(title, prompt, meta, approve, reject);
    return li;
  }

  async function decide(item, verb) {
    const approver = ui.approver.value.trim();
    if (!approver) {
      say("Type the name you decide as (Approve as) first.", true);
      return;
    }
    try {
      const path = `/v1/workflows/runs/${encodeURIComponent(item.run_id)}/${verb}`;
      const done = await call("POST", path, { approver, comment: ui.comment.value.trim() || null });
      await load(false);
      say(`${verb === "approve" ? "Approved" : "Rejected"} ${item.run_id}: ${done.state}`, false);
    } catch (err) {
      say(`Could not ${verb} ${item.run_id}: ${err.message}`, true);
    }
  }

  async function load(announce = true) {
    try {
      const body = await call("GET", "/v1/workflows/approvals");
      ui.list.replaceChildren(...body.approvals.map(card));
      if (announce) say(`${body.approvals.length} approval(s) waiting`, false);
    } catch (err) {
      ui.list.replaceChildren();
      say("Approvals unavailable: " + err.message, true);
    }
  }

  ui.key.addEventListener("change", () => load());
  ui.refresh.addEventListener("click", () => load());
  load();
})();
