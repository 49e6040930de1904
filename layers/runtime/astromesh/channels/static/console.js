// Astromesh console: pick an agent, chat over the WebSocket, watch the run's steps and cost.
// Plain browser JavaScript, no build step. It speaks the public /v1 API only:
//   GET /v1/agents, WS /v1/ws/agent/{name}?session_id=&api_key=, GET /v1/runs/{id}.
"use strict";

(() => {
  const KEY_STORE = "astromesh.console.apiKey";
  const AGENT_STORE = "astromesh.console.agent";
  const SESSION_STORE = "astromesh.console.session";

  const $ = (id) => document.getElementById(id);
  const ui = {
    key: $("api-key"), agent: $("agent"), session: $("session"), newSession: $("new-session"),
    connection: $("connection"), messages: $("messages"), hint: $("hint"), composer: $("composer"),
    query: $("query"), send: $("send"), cancel: $("cancel"), runId: $("run-id"),
    runStatus: $("run-status"), steps: $("steps"), usage: $("usage"), byModel: $("by-model"),
    sessionTotal: $("session-total"),
  };

  const state = {
    socket: null, socketKey: "", current: null, lastError: null, parts: new Map(), agentsError: null,
    totals: { runs: 0, tokensIn: 0, tokensOut: 0, cost: 0 },
  };

  // -- small helpers ------------------------------------------------------------------------

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function short(value, limit = 600) {
    const text = typeof value === "string" ? value : JSON.stringify(value, null, 1);
    return text.length > limit ? text.slice(0, limit) + " …" : text;
  }

  function money(value) {
    if (typeof value !== "number") return "–";
    return value === 0 ? "$0" : "$" + value.toFixed(value < 0.01 ? 6 : 4);
  }

  function headers() {
    const key = ui.key.value.trim();
    return key ? { "x-api-key": key } : {};
  }

  function setPill(node, text, cls) {
    node.textContent = text;
    node.className = "pill " + (cls || text);
  }

  function scrollDown() { ui.messages.scrollTop = ui.messages.scrollHeight; }

  function addMessage(cls, text) {
    if (ui.hint) { ui.hint.remove(); ui.hint = null; }
    const node = el("div", "msg " + cls, text);
    ui.messages.appendChild(node);
    scrollDown();
    return node;
  }

  function showError(message) {
    addMessage("error", message);
  }

  function newSessionId() {
    const random = crypto.getRandomValues(new Uint32Array(2));
    return "console-" + Array.from(random, (n) => n.toString(36)).join("");
  }

  // -- agents -------------------------------------------------------------------------------

  async function loadAgents() {
    let response;
    try {
      response = await fetch("/v1/agents", { headers: headers() });
    } catch (err) {
      showError("Cannot reach the server: " + err);
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (state.agentsError) { state.agentsError.remove(); state.agentsError = null; }
    if (!response.ok) {
      const error = body.error || {};
      state.agentsError = addMessage("error",
        `Listing agents failed (${response.status} ${error.code || ""}): ${error.message || ""}`);
      ui.agent.replaceChildren();
      return;
    }
    const wanted = localStorage.getItem(AGENT_STORE);
    ui.agent.replaceChildren();
    for (const agent of body.agents || []) {
      if (agent.status === "draft") continue;  // listed with its error, but cannot run
      const option = el("option", "", agent.name);
      option.value = agent.name;
      option.title = agent.description || "";
      if (agent.name === wanted) option.selected = true;
      ui.agent.appendChild(option);
    }
    if (!ui.agent.value && ui.agent.options.length) ui.agent.selectedIndex = 0;
    if (!ui.agent.options.length) showError("No agents are available to this key.");
    connect();
  }

  // -- the socket ---------------------------------------------------------------------------

  function socketUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams({ session_id: ui.session.value.trim() || "default" });
    const key = ui.key.value.trim();
    if (key) params.set("api_key", key);
    return `${scheme}//${location.host}/v1/ws/agent/${encodeURIComponent(ui.agent.value)}?${params}`;
  }

  function connect() {
    if (!ui.agent.value) return Promise.resolve(null);
    const url = socketUrl();
    if (state.socket && state.socketKey === url && state.socket.readyState <= WebSocket.OPEN) {
      return state.socket.readyState === WebSocket.OPEN
        ? Promise.resolve(state.socket)
        : new Promise((resolve) => state.socket.addEventListener("open", () => resolve(state.socket), { once: true }));
    }
    if (state.socket) state.socket.close(1000);
    setPill(ui.connection, "connecting", "processing");
    const socket = new WebSocket(url);
    state.socket = socket;
    state.socketKey = url;
    socket.addEventListener("message", (event) => {
      if (socket === state.socket) onFrame(JSON.parse(event.data));
    });
    socket.addEventListener("close", (event) => {
      if (socket !== state.socket) return;
      setPill(ui.connection, "offline", "off");
      state.socket = null;
      // A refusal (4401 bad key, 4403, 4404 unknown agent) was explained by its error frame.
      if (event.code >= 4000 && !state.lastError) showError(`Connection closed (${event.code})`);
      finishRun();
    });
    return new Promise((resolve) => {
      socket.addEventListener("open", () => {
        setPill(ui.connection, "connected", "on");
        resolve(socket);
      }, { once: true });
      socket.addEventListener("close", () => resolve(null), { once: true });
    });
  }

  // -- frames -------------------------------------------------------------------------------

  function onFrame(frame) {
    if (frame.type === "part") return onPart(frame);
    const run = state.current;
    switch (frame.type) {
      case "status":
        if (run && frame.run_id) { run.id = frame.run_id; ui.runId.textContent = frame.run_id; }
        setPill(ui.runStatus, frame.status);
        if (frame.status === "processing") addStep("status", `processing · ${frame.agent}`);
        break;
      case "token":
        if (run) {
          run.text += frame.content;
          run.bubble.textContent = run.text;
          scrollDown();
        }
        break;
      case "tool_call":
        addStep("tool_call", `→ ${frame.name}`, frame.arguments, frame.id);
        break;
      case "tool_result": {
        const item = addStep("tool_result " + (frame.ok ? "ok" : "failed"),
          `← ${frame.name} ${frame.ok ? "ok" : "failed"}`, frame.content);
        item.dataset.callId = frame.id || "";
        break;
      }
      case "error":
        state.lastError = frame;
        addStep("error", `error · ${frame.code}`, frame.message);
        if (!run) showError(`${frame.code}: ${frame.message}`);
        else run.error = frame;
        break;
      case "done":
        onDone(frame);
        break;
      default:
        addStep("other", frame.type, frame);
    }
  }

  function onPart(frame) {
    // Frames larger than a transport's limit arrive as ordered parts of their JSON text.
    const parts = state.parts.get(frame.id) || [];
    parts[frame.index] = frame.data;
    state.parts.set(frame.id, parts);
    if (parts.filter((p) => p !== undefined).length === frame.count) {
      state.parts.delete(frame.id);
      onFrame(JSON.parse(parts.join("")));
    }
  }

  function addStep(kind, title, detail, callId) {
    const item = el("li", kind);
    item.appendChild(el("span", "kind", title));
    if (detail !== undefined && detail !== null && detail !== "") item.appendChild(el("pre", "", short(detail)));
    if (callId) item.dataset.callId = callId;
    ui.steps.appendChild(item);
    return item;
  }

  function onDone(frame) {
    const run = state.current;
    if (run) {
      if (!run.text && frame.answer) run.bubble.textContent = frame.answer;
      if (!run.text && !frame.answer && run.error) run.bubble.textContent = "(no answer)";
      run.bubble.classList.remove("streaming");
      const usage = frame.usage || {};
      run.bubble.appendChild(el("span", "meta",
        `${frame.status || "done"} · ${usage.tokens_in ?? 0} in / ${usage.tokens_out ?? 0} out · ${money(usage.cost)}`));
    }
    setPill(ui.runStatus, frame.status || "done");
    showUsage(frame.usage || {});
    state.totals.runs += 1;
    state.totals.tokensIn += (frame.usage || {}).tokens_in || 0;
    state.totals.tokensOut += (frame.usage || {}).tokens_out || 0;
    state.totals.cost += (frame.usage || {}).cost || 0;
    const t = state.totals;
    ui.sessionTotal.textContent = `${t.runs} run(s) · ${t.tokensIn} in / ${t.tokensOut} out · ${money(t.cost)}`;
    if (frame.run_id) loadSteps(frame.run_id);
    finishRun();
  }

  function showUsage(usage) {
    for (const dd of ui.usage.querySelectorAll("dd")) {
      const field = dd.dataset.field;
      const value = usage[field];
      dd.textContent = field === "cost" ? money(value) : (value ?? "–");
    }
    const body = ui.byModel.querySelector("tbody");
    body.replaceChildren();
    for (const line of usage.by_model || []) {
      const row = el("tr");
      for (const cell of [`${line.provider} / ${line.model}`, line.calls, line.tokens_in, line.tokens_out, money(line.cost)]) {
        row.appendChild(el("td", "", String(cell)));
      }
      body.appendChild(row);
    }
    ui.byModel.hidden = !(usage.by_model || []).length;
  }

  async function loadSteps(runId) {
    // The recorded steps (prepare, model calls, tool calls, guardrails...) replace the live view.
    const response = await fetch(`/v1/runs/${encodeURIComponent(runId)}`, { headers: headers() }).catch(() => null);
    if (!response || !response.ok) return;
    const body = await response.json();
    ui.steps.replaceChildren();
    for (const step of body.steps || []) {
      const data = step.data || {};
      const ms = ` · ${Math.round(step.duration_ms || 0)} ms`;
      let title = `${step.index + 1}. ${step.type}${ms}`;
      let detail = null;
      let kind = step.type;
      if (step.type === "model_call") {
        const usage = data.usage || {};
        title += ` · ${data.model} · ${usage.tokens_in ?? 0}/${usage.tokens_out ?? 0} tok · ${money(data.cost)}`;
        detail = (data.tool_calls || []).length
          ? "calls " + data.tool_calls.map((c) => c.name).join(", ")
          : data.content;
      } else if (step.type === "prepare") {
        const context = data.context || {};
        detail = `context ${context.tokens ?? "?"} of ${context.budget ?? "?"} tokens · ` +
          `${data.history_messages ?? 0} history message(s) · tools: ${(data.tools || []).join(", ") || "none"}`;
      } else if (step.type === "tool_call") {
        kind = "tool_result " + (data.ok ? "ok" : "failed");
        title += ` · ${data.name} ${data.ok ? "ok" : "failed"}`;
        detail = { arguments: data.arguments, result: data.result };
      } else {
        detail = data;
      }
      addStep(kind, title, detail);
    }
  }

  function finishRun() {
    state.current = null;
    ui.send.disabled = false;
    ui.cancel.disabled = true;
  }

  // -- actions ------------------------------------------------------------------------------

  async function send(event) {
    event.preventDefault();
    const query = ui.query.value.trim();
    if (!query || state.current) return;
    const socket = await connect();
    if (!socket) { showError("Not connected: check the API key and the agent."); return; }
    addMessage("user", query);
    const bubble = addMessage("assistant streaming", "");
    state.current = { id: null, text: "", bubble, error: null };
    state.lastError = null;
    ui.steps.replaceChildren();
    showUsage({});
    ui.runId.textContent = "…";
    setPill(ui.runStatus, "processing");
    ui.query.value = "";
    ui.send.disabled = true;
    ui.cancel.disabled = false;
    socket.send(JSON.stringify({ action: "run", query, session_id: ui.session.value.trim() || "default" }));
  }

  function cancel() {
    if (state.socket && state.current) state.socket.send(JSON.stringify({ action: "cancel" }));
  }

  function start() {
    ui.key.value = localStorage.getItem(KEY_STORE) || "";
    ui.session.value = localStorage.getItem(SESSION_STORE) || newSessionId();
    localStorage.setItem(SESSION_STORE, ui.session.value);

    ui.key.addEventListener("change", () => {
      localStorage.setItem(KEY_STORE, ui.key.value.trim());
      loadAgents();
    });
    ui.agent.addEventListener("change", () => {
      localStorage.setItem(AGENT_STORE, ui.agent.value);
      connect();
    });
    ui.session.addEventListener("change", () => {
      localStorage.setItem(SESSION_STORE, ui.session.value.trim());
      connect();
    });
    ui.newSession.addEventListener("click", () => {
      ui.session.value = newSessionId();
      localStorage.setItem(SESSION_STORE, ui.session.value);
      ui.messages.replaceChildren();
      state.totals = { runs: 0, tokensIn: 0, tokensOut: 0, cost: 0 };
      ui.sessionTotal.textContent = "–";
      connect();
    });
    ui.composer.addEventListener("submit", send);
    ui.query.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); ui.composer.requestSubmit(); }
    });
    ui.cancel.addEventListener("click", cancel);
    loadAgents();
  }

  start();
})();
