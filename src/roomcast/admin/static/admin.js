// roomcast admin: plain JavaScript, no build step, no dependency.
//
// Every figure comes from the server API's methods, called through /admin/api/call/<method>
// with the session cookie: info (nodes), channels, presence, presence_stats, history, publish,
// disconnect. The visible view refreshes every REFRESH_MS while the page is shown and not
// paused. Data is put on the page with textContent only, never parsed as HTML.
"use strict";

(() => {
  const REFRESH_MS = 2000;
  const HISTORY_SHOWN = 10;
  const CHANNELS_SHOWN = 500;
  const CONFIRM_MS = 4000;
  const METHODS = [
    "info", "channels", "presence", "presence_stats", "history", "history_remove",
    "publish", "broadcast", "subscribe", "unsubscribe", "disconnect",
  ];
  const VIEWS = ["nodes", "channels", "console"];

  const $ = (selector) => document.querySelector(selector);
  const state = {
    view: "nodes",
    paused: false,
    timer: null,
    refreshing: false,
    lastUpdate: 0,
    selected: null,
    search: "",
  };

  class SessionEnded extends Error {}

  class ApiError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
  }

  // --- server calls ------------------------------------------------------------------------

  async function post(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  }

  async function api(method, params = {}) {
    const response = await post(`api/call/${encodeURIComponent(method)}`, params);
    if (response.status === 401) {
      showLogin("Your session ended: log in again.");
      throw new SessionEnded();
    }
    const body = await response.json().catch(() => ({}));
    if (body.error) {
      const error = body.error;
      throw typeof error === "object" ? new ApiError(error.code, error.message) : new ApiError(response.status, String(error));
    }
    if (!response.ok) throw new ApiError(response.status, `HTTP ${response.status}`);
    return body.result ?? body;
  }

  // --- small helpers -----------------------------------------------------------------------

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function number(value) {
    return new Intl.NumberFormat().format(value ?? 0);
  }

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds || 0));
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    if (m) return `${m}m ${s % 60}s`;
    return `${s}s`;
  }

  function plural(count, word) {
    return `${number(count)} ${word}${count === 1 ? "" : "s"}`;
  }

  function pretty(value) {
    return JSON.stringify(value, null, 2);
  }

  function compact(value) {
    const text = JSON.stringify(value);
    return text.length > 240 ? `${text.slice(0, 237)}…` : text;
  }

  function showResult(target, ok, text) {
    target.hidden = false;
    target.className = `result ${ok ? "ok" : "failed"}`;
    target.textContent = text;
  }

  function describe(error) {
    if (error instanceof ApiError) return `error ${error.code}: ${error.message}`;
    return String(error.message || error);
  }

  function parseJSON(text, what) {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new ApiError("input", `${what} is not valid JSON: ${error.message}`);
    }
  }

  // --- screens ----------------------------------------------------------------------------

  function showLogin(message) {
    stopRefreshing();
    $("#app-screen").hidden = true;
    $("#login-screen").hidden = false;
    const error = $("#login-error");
    error.hidden = !message;
    error.textContent = message || "";
    $("#login-password").focus();
  }

  function showApp() {
    $("#login-screen").hidden = true;
    $("#app-screen").hidden = false;
    const wanted = location.hash.slice(1);
    selectView(VIEWS.includes(wanted) ? wanted : state.view);
  }

  async function login(event) {
    event.preventDefault();
    const button = $("#login-submit");
    const error = $("#login-error");
    button.disabled = true;
    error.hidden = true;
    try {
      const response = await post("api/login", { password: $("#login-password").value });
      if (response.ok) {
        $("#login-password").value = "";
        showApp();
        return;
      }
      const body = await response.json().catch(() => ({}));
      error.textContent = body.error || `login failed (HTTP ${response.status})`;
      error.hidden = false;
    } catch (failure) {
      error.textContent = `cannot reach the server: ${failure.message}`;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  async function logout() {
    await post("api/logout", {}).catch(() => undefined);
    showLogin("");
  }

  // --- views and refreshing ---------------------------------------------------------------

  function selectView(view) {
    state.view = view;
    for (const section of document.querySelectorAll(".view")) {
      section.hidden = section.dataset.view !== view;
    }
    for (const tab of document.querySelectorAll(".tab")) {
      const active = tab.dataset.view === view;
      tab.classList.toggle("active", active);
      tab.setAttribute("aria-current", active ? "page" : "false");
    }
    if (location.hash !== `#${view}`) history.replaceState(null, "", `#${view}`);
    refreshNow();
  }

  function stopRefreshing() {
    clearTimeout(state.timer);
    state.timer = null;
  }

  function scheduleRefresh() {
    stopRefreshing();
    if (!state.paused && !document.hidden && !$("#app-screen").hidden) {
      state.timer = setTimeout(refreshNow, REFRESH_MS);
    }
  }

  async function refreshNow() {
    if ($("#app-screen").hidden || state.refreshing) return;
    state.refreshing = true;
    try {
      if (state.view === "nodes") await refreshNodes();
      else if (state.view === "channels") await refreshChannels();
      state.lastUpdate = Date.now();
      setBanner("");
      setLive("ok");
    } catch (error) {
      if (error instanceof SessionEnded) return;
      setBanner(`Could not refresh: ${describe(error)}`);
      setLive("down");
    } finally {
      state.refreshing = false;
      scheduleRefresh();
    }
  }

  function setBanner(text) {
    const banner = $("#banner");
    banner.hidden = !text;
    banner.textContent = text;
  }

  function setLive(kind) {
    const live = $("#live");
    live.classList.remove("ok", "down", "paused");
    live.classList.add(state.paused ? "paused" : kind);
    updateLiveText();
  }

  function updateLiveText() {
    const text = $("#live-text");
    if (state.paused) {
      text.textContent = "paused";
    } else if (!state.lastUpdate) {
      text.textContent = "connecting…";
    } else {
      const seconds = Math.round((Date.now() - state.lastUpdate) / 1000);
      text.textContent = seconds < 2 ? "live · just now" : `live · ${seconds}s ago`;
    }
  }

  function togglePause() {
    state.paused = !state.paused;
    $("#pause").textContent = state.paused ? "Resume" : "Pause";
    setLive("ok");
    if (state.paused) stopRefreshing();
    else refreshNow();
  }

  // --- nodes ------------------------------------------------------------------------------

  async function refreshNodes() {
    // Clients and subscriptions add up over the nodes; a channel (or a user) may be on
    // several, so the distinct channels come from the channels method instead.
    const [result, channels] = await Promise.all([api("info"), api("channels")]);
    const nodes = result.nodes || [];
    const total = (field) => nodes.reduce((sum, node) => sum + (node[field] || 0), 0);
    $("#total-nodes").textContent = number(nodes.length);
    $("#total-clients").textContent = number(total("num_clients"));
    $("#total-subs").textContent = number(total("num_subs"));
    $("#total-channels").textContent = number(Object.keys(channels.channels || {}).length);
    const list = $("#node-list");
    list.replaceChildren(...nodes.map((node, index) => nodeCard(node, index === 0)));
  }

  function nodeCard(node, answering) {
    const card = element("article", "card node-card");
    card.dataset.nodeName = node.name;
    const head = element("div", "node-head");
    const name = element("span", "node-name", node.name);
    name.title = node.uid || node.name;
    head.append(name);
    const meta = element("div", "node-meta");
    meta.append(element("span", "", `v${node.version}`), element("span", "", `up ${duration(node.uptime)}`));
    if (answering) meta.append(element("span", "chip here", "serving this page"));
    const stats = element("div", "node-stats");
    for (const [field, label] of [
      ["num_clients", "clients"],
      ["num_users", "users"],
      ["num_channels", "channels"],
      ["num_subs", "subs"],
    ]) {
      const stat = element("div", "node-stat");
      const value = element("span", "value", number(node[field]));
      value.dataset.field = field;
      stat.append(value, element("span", "label", label));
      stats.append(stat);
    }
    card.append(head, meta, stats);
    return card;
  }

  // --- channels ---------------------------------------------------------------------------

  function searchPattern(text) {
    const term = text.trim();
    if (!term) return "";
    return /[*?[\]]/.test(term) ? term : `*${term}*`;
  }

  async function refreshChannels() {
    const result = await api("channels", { pattern: searchPattern(state.search) });
    const entries = Object.entries(result.channels || {})
      .map(([name, info]) => [name, info.num_clients || 0])
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const rows = entries.slice(0, CHANNELS_SHOWN).map(([name, count]) => channelRow(name, count));
    $("#channel-rows").replaceChildren(...rows);
    $("#channels-empty").hidden = entries.length > 0;
    $("#channels-empty").textContent = state.search
      ? "No channel with subscribers matches the search."
      : "No channel has subscribers right now.";
    const shown = entries.length > CHANNELS_SHOWN ? `, first ${CHANNELS_SHOWN} shown` : "";
    $("#channel-count").textContent = `${plural(entries.length, "channel")}${shown}`;
    if (state.selected) await refreshDetail();
  }

  function channelRow(name, count) {
    const row = element("tr", "channel-row");
    row.dataset.channel = name;
    row.tabIndex = 0;
    row.classList.toggle("selected", name === state.selected);
    const count_cell = element("td", "num", number(count));
    count_cell.dataset.field = "num_clients";
    row.append(element("td", "", name), count_cell);
    const open = () => openChannel(name);
    row.addEventListener("click", open);
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        open();
      }
    });
    return row;
  }

  function openChannel(name) {
    state.selected = name;
    for (const row of document.querySelectorAll(".channel-row")) {
      row.classList.toggle("selected", row.dataset.channel === name);
    }
    $("#detail-name").textContent = name;
    $("#channel-detail").hidden = false;
    $(".split").classList.add("with-detail");
    refreshDetail().catch((error) => setBanner(`Could not read ${name}: ${describe(error)}`));
  }

  function closeChannel() {
    state.selected = null;
    $("#channel-detail").hidden = true;
    $(".split").classList.remove("with-detail");
    for (const row of document.querySelectorAll(".channel-row.selected")) row.classList.remove("selected");
  }

  async function settled(promise) {
    try {
      return { value: await promise };
    } catch (error) {
      if (error instanceof SessionEnded) throw error;
      return { error };
    }
  }

  async function refreshDetail() {
    const channel = state.selected;
    const [presence, stats, history] = await Promise.all([
      settled(api("presence", { channel })),
      settled(api("presence_stats", { channel })),
      settled(api("history", { channel, limit: HISTORY_SHOWN, reverse: true })),
    ]);
    if (channel !== state.selected) return;
    renderPresence(presence, stats);
    renderHistory(history);
  }

  function note(target, text) {
    target.hidden = !text;
    target.textContent = text;
  }

  function renderPresence(presence, stats) {
    const list = $("#presence-list");
    const noteTarget = $("#presence-note");
    if (presence.error) {
      list.replaceChildren();
      $("#presence-stats").textContent = "";
      note(noteTarget, presence.error.code === 108 ? "This channel's namespace keeps no presence." : describe(presence.error));
      return;
    }
    const clients = Object.values(presence.value.presence || {});
    clients.sort((a, b) => (a.user || "").localeCompare(b.user || "") || a.client.localeCompare(b.client));
    list.replaceChildren(...clients.map((info) => {
      const item = element("li");
      item.dataset.user = info.user || "";
      item.append(element("div", "who", info.user || "anonymous"), element("div", "sub", info.client));
      return item;
    }));
    const counts = stats.value;
    $("#presence-stats").textContent = counts
      ? `· ${plural(counts.num_clients, "client")}, ${plural(counts.num_users, "user")}`
      : "";
    note(noteTarget, clients.length ? "" : "Nobody is present.");
  }

  function renderHistory(history) {
    const list = $("#history-list");
    const noteTarget = $("#history-note");
    if (history.error) {
      list.replaceChildren();
      $("#history-position").textContent = "";
      note(noteTarget, history.error.code === 108 ? "This channel's namespace keeps no history." : describe(history.error));
      return;
    }
    const page = history.value;
    const publications = page.publications || [];
    list.replaceChildren(...publications.map((publication) => {
      const item = element("li");
      item.append(element("span", "offset", `#${publication.offset ?? "?"}`), document.createTextNode(compact(publication.data)));
      return item;
    }));
    $("#history-position").textContent = page.epoch ? `· offset ${page.offset}, epoch ${page.epoch}` : "";
    note(noteTarget, publications.length ? "" : "Nothing kept yet.");
  }

  // --- console ----------------------------------------------------------------------------

  async function publish(event) {
    event.preventDefault();
    const target = $("#publish-result");
    const button = $("#publish-submit");
    button.disabled = true;
    try {
      const channel = $("#publish-channel").value.trim();
      const data = parseJSON($("#publish-data").value, "Data");
      const result = await api("publish", { channel, data });
      const where = result.offset ? ` at offset ${result.offset} (epoch ${result.epoch})` : "";
      showResult(target, true, `published into ${channel}${where}`);
    } catch (error) {
      if (!(error instanceof SessionEnded)) showResult(target, false, describe(error));
    } finally {
      button.disabled = false;
    }
  }

  let confirmTimer = null;

  async function disconnect(event) {
    event.preventDefault();
    const button = $("#disconnect-submit");
    const user = $("#disconnect-user").value.trim();
    if (!button.classList.contains("confirming")) {
      button.classList.add("confirming");
      button.textContent = `Click again to disconnect ${user}`;
      confirmTimer = setTimeout(resetDisconnect, CONFIRM_MS);
      return;
    }
    resetDisconnect();
    const target = $("#disconnect-result");
    const reconnect = $("#disconnect-reconnect").checked;
    const params = { user };
    if (reconnect) params.disconnect = { code: 3011, reason: "force reconnect" };
    button.disabled = true;
    try {
      await api("disconnect", params);
      showResult(target, true, `disconnected ${user} (${reconnect ? "3011, may reconnect" : "3503, no reconnect"})`);
    } catch (error) {
      if (!(error instanceof SessionEnded)) showResult(target, false, describe(error));
    } finally {
      button.disabled = false;
    }
  }

  function resetDisconnect() {
    clearTimeout(confirmTimer);
    const button = $("#disconnect-submit");
    button.classList.remove("confirming");
    button.textContent = "Disconnect";
  }

  async function callMethod(event) {
    event.preventDefault();
    const target = $("#call-result");
    try {
      const params = parseJSON($("#call-params").value || "{}", "Parameters");
      const result = await api($("#call-method").value, params);
      showResult(target, true, pretty(result));
    } catch (error) {
      if (!(error instanceof SessionEnded)) showResult(target, false, describe(error));
    }
  }

  // --- wiring -----------------------------------------------------------------------------

  function wire() {
    $("#login-form").addEventListener("submit", login);
    $("#logout").addEventListener("click", logout);
    $("#pause").addEventListener("click", togglePause);
    for (const tab of document.querySelectorAll(".tab")) {
      tab.addEventListener("click", () => selectView(tab.dataset.view));
    }
    let searchTimer = null;
    $("#channel-search").addEventListener("input", (event) => {
      state.search = event.target.value;
      clearTimeout(searchTimer);
      searchTimer = setTimeout(refreshNow, 200);
    });
    $("#detail-close").addEventListener("click", closeChannel);
    $("#detail-publish").addEventListener("click", () => {
      $("#publish-channel").value = state.selected || "";
      selectView("console");
      $("#publish-data").focus();
    });
    $("#publish-form").addEventListener("submit", publish);
    $("#disconnect-form").addEventListener("submit", disconnect);
    $("#disconnect-user").addEventListener("input", resetDisconnect);
    $("#call-form").addEventListener("submit", callMethod);
    const select = $("#call-method");
    select.replaceChildren(...METHODS.map((method) => element("option", "", method)));
    document.addEventListener("visibilitychange", () => (document.hidden ? stopRefreshing() : refreshNow()));
    setInterval(updateLiveText, 1000);
  }

  async function start() {
    wire();
    const response = await fetch("api/session", { credentials: "same-origin", cache: "no-store" }).catch(() => null);
    if (response && response.ok) showApp();
    else showLogin("");
  }

  start();
})();
