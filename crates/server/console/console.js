// Cardinal's admin console: plain DOM, no dependencies, served by Cardinal itself. The admin
// token lives in sessionStorage only (never a URL, never a cookie); every request goes to this
// origin. Text from the server is set with textContent, never parsed as HTML.
"use strict";

(() => {
  const TOKEN_KEY = "cardinal.adminToken";
  const $ = (id) => document.getElementById(id);
  const token = () => sessionStorage.getItem(TOKEN_KEY);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const time = (secs) => (secs === null || secs === undefined ? "—" : new Date(secs * 1000).toISOString().replace(".000Z", "Z"));
  const timeMs = (ms) => new Date(ms).toISOString();
  const short = (id) => (id ? `${id.slice(0, 12)}…` : "—");

  class ApiError extends Error {
    constructor(status, body) {
      super(body && body.detail ? `${body.detail} (${body.code}, ${status})` : `HTTP ${status}`);
      this.status = status;
      this.code = body && body.code;
    }
  }

  async function api(path, options = {}) {
    const headers = { Authorization: `Bearer ${token()}` };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method: options.method || "GET",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: "omit",
      cache: "no-store",
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  function showError(error) {
    const box = $("error");
    if (!error) {
      box.hidden = true;
      box.textContent = "";
      return;
    }
    let text = error.message || String(error);
    if (error.status === 401) text = `This token is not accepted: ${error.message}. Sign in again with a valid admin token.`;
    if (error.status === 403) text = `This token is not an admin token of its app: ${error.message}.`;
    box.textContent = text;
    box.hidden = false;
  }

  function notice(text) {
    const box = $("notice");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function render(...nodes) {
    const view = $("view");
    view.replaceChildren(...nodes.flat().filter((node) => node !== null && node !== undefined));
    $("main").focus();
  }

  function signedIn(yes) {
    $("sign-in").hidden = yes;
    $("nav").hidden = !yes;
    if (!yes) {
      $("view").replaceChildren();
      $("app-name").textContent = "";
    }
  }

  // A confirmation with an optional required reason; resolves to the reason, or null if cancelled.
  function confirmAction(text, { reason = false, action = "Revoke" } = {}) {
    const dialog = $("confirm");
    $("confirm-text").textContent = text;
    $("reason-row").hidden = !reason;
    $("reason").value = "";
    $("reason").required = reason;
    $("confirm-ok").textContent = action;
    return new Promise((resolve) => {
      const done = (value) => {
        $("confirm-form").removeEventListener("submit", onSubmit);
        $("confirm-cancel").removeEventListener("click", onCancel);
        dialog.removeEventListener("cancel", onCancel);
        dialog.close();
        resolve(value);
      };
      const onSubmit = (event) => {
        event.preventDefault();
        const value = $("reason").value.trim();
        if (reason && !value) {
          $("reason").focus();
          return;
        }
        done(value);
      };
      const onCancel = (event) => {
        if (event) event.preventDefault();
        done(null);
      };
      $("confirm-form").addEventListener("submit", onSubmit);
      $("confirm-cancel").addEventListener("click", onCancel);
      dialog.addEventListener("cancel", onCancel);
      dialog.showModal();
      (reason ? $("reason") : $("confirm-ok")).focus();
    });
  }

  function tile(label, value, extra) {
    return el("div", { class: "tile" }, el("span", { class: "figure", text: value }), el("span", { text: label }), extra || null);
  }

  async function overview() {
    const o = await api("/v1/admin/overview");
    $("app-name").textContent = `· ${o.app}`;
    const ratio = o.instance.lookups ? `${Math.round((100 * o.instance.lookups_not_modified) / o.instance.lookups)}%` : "—";
    const log = o.log.intact
      ? el("p", { class: "intact", id: "log-status", text: `Event log intact: ${o.log.checked} events verified` })
      : el("p", { class: "broken", id: "log-status", text: `Event log does NOT verify: ${o.log.failure}` });
    const t = o.transparency;
    const transparency = t
      ? el("p", { id: "transparency-status", class: t.refusing_to_sign ? "broken" : null,
        text: t.refusing_to_sign
          ? `Transparency log ${t.origin} REFUSES TO SIGN: ${t.refusing_to_sign}`
          : `Transparency log ${t.origin}: ${t.size} entries in the newest checkpoint${t.signed_at ? ` (signed ${timeMs(t.signed_at)})` : ""}, cosigned by ${t.cosigned} of ${t.witnesses} witnesses (quorum ${t.quorum})` })
      : null;
    render(
      el("h2", { text: "Overview" }),
      log,
      transparency,
      el("h3", { text: "This app" }),
      el("div", { class: "tiles" },
        tile("identities", o.identities), tile("cards", o.cards), tile("active cards", o.active_cards),
        tile("revoked chains", o.revoked_chains), tile("events", o.events)),
      el("h3", { text: "This instance since it started (all apps)" }),
      el("div", { class: "tiles" },
        tile("lookups", o.instance.lookups), tile("answered 304", ratio), tile("publishes", o.instance.published),
        tile("revocations", o.instance.revoked), tile("rate-limit refusals", o.instance.rate_limited),
        tile("tokens refused", o.instance.token_rejections)),
    );
  }

  async function identities(params) {
    const prefix = params.get("prefix") || "";
    const after = params.get("after");
    const query = new URLSearchParams({ prefix, limit: "50" });
    if (after) query.set("after", after);
    const page = await api(`/v1/admin/identities?${query}`);
    const input = el("input", { id: "prefix", name: "prefix", value: prefix, autocomplete: "off" });
    const form = el("form", { class: "search", role: "search", onsubmit: (event) => {
      event.preventDefault();
      location.hash = `#/identities?${new URLSearchParams({ prefix: input.value })}`;
    } }, el("div", {}, el("label", { for: "prefix", text: "Identities starting with" }), input), el("button", { type: "submit", text: "Search" }));
    const rows = page.identities.map((row) =>
      el("tr", {},
        el("td", { "data-label": "Identity" }, el("a", { href: `#/identity/${encodeURIComponent(row.identity)}`, text: row.identity })),
        el("td", { "data-label": "Active", text: row.active }),
        el("td", { "data-label": "Cards", text: row.cards }),
        el("td", { "data-label": "Last change", text: time(row.last_change_at) })));
    const table = rows.length
      ? el("table", { class: "wide", id: "identities" },
        el("thead", {}, el("tr", {}, el("th", { text: "Identity" }), el("th", { text: "Active" }), el("th", { text: "Cards" }), el("th", { text: "Last change" }))),
        el("tbody", {}, rows))
      : el("p", { text: "No identity matches." });
    const next = page.next
      ? el("a", { href: `#/identities?${new URLSearchParams({ prefix, after: page.next })}`, text: "Next page" })
      : null;
    render(el("h2", { text: "Identities" }), form, table, next);
  }

  function check(ok, what) {
    return el("span", { class: ok ? "check-ok" : "check-bad", text: `${what} ${ok ? "verifies" : "does NOT verify"}` });
  }

  async function identity(name) {
    const history = await api(`/v1/admin/identities/${encodeURIComponent(name)}/history?limit=500`);
    const eventsByCard = new Map();
    for (const view of history.events) {
      const id = view.event.card_id;
      if (!eventsByCard.has(id)) eventsByCard.set(id, []);
      eventsByCard.get(id).push(view);
    }
    const chains = new Map();
    for (const card of history.cards) {
      if (!chains.has(card.chain_id)) chains.set(card.chain_id, []);
      chains.get(card.chain_id).push(card);
    }
    const sections = [];
    let n = 0;
    for (const [chainId, cards] of chains) {
      n += 1;
      const items = cards.map((card) => {
        const role = card.chain_index === 0 ? "root" : `rotation ${card.chain_index}`;
        const happened = (eventsByCard.get(card.id) || []).map((view) => {
          const reason = view.event.detail && view.event.detail.reason ? ` — “${view.event.detail.reason}”` : "";
          return el("li", { text: `${timeMs(view.event.at)} ${view.event.kind} by ${view.event.actor}${reason}` });
        });
        const revoke = card.status === "active"
          ? el("button", { type: "button", class: "danger", "data-card": card.id, onclick: () => revokeCard(card, name), text: "Revoke…" })
          : null;
        return el("li", { class: card.status, "data-card": card.id },
          el("p", {}, el("span", { class: `status ${card.status}`, text: card.status }), " ", el("strong", { text: role }), " ",
            el("span", { class: "mono", title: card.id, text: short(card.id) })),
          el("p", {}, `published ${time(card.published_at)} · created ${time(card.created_at)}`,
            card.revoked_at ? ` · revoked ${time(card.revoked_at)} by ${card.revoked_by || "?"}${card.revocation_reason ? ` (“${card.revocation_reason}”)` : ""}` : ""),
          el("p", {}, check(card.self_signature_valid, "self signature"), " · ", check(card.countersignature_valid, "countersignature")),
          el("p", { class: "mono", text: `key ${card.public_key}` }),
          happened.length ? el("ul", { class: "events" }, happened) : null,
          revoke);
      });
      sections.push(el("h3", { text: `Chain ${n} (${short(chainId)})` }), el("ol", { class: "timeline" }, items));
    }
    render(
      el("h2", {}, "Identity ", el("span", { class: "mono", id: "identity-name", text: name })),
      history.cards.length ? sections : el("p", { text: "This identity has never published a card." }),
      history.next ? el("p", { text: "Older chains continue beyond 500 cards; use the admin API to page on." }) : null,
    );
  }

  async function revokeCard(card, name) {
    const reason = await confirmAction(`Revoke the chain of card ${short(card.id)} of ${name}? Every card of the chain stops being served at once; this cannot be undone.`, { reason: true });
    if (reason === null) return;
    try {
      await api(`/v1/admin/cards/${card.id}/revoke`, { method: "POST", body: { reason } });
      notice(`Revoked the chain of ${short(card.id)}: “${reason}”.`);
      await identity(name);
    } catch (error) {
      showError(error);
    }
  }

  async function keys() {
    const page = await api("/v1/admin/keys");
    const rows = page.keys.map((key) =>
      el("tr", {},
        el("td", { class: "mono", "data-label": "Key id", text: key.kid }),
        el("td", { "data-label": "Role", text: key.role }),
        el("td", { "data-label": "Created", text: time(key.created_at) }),
        el("td", { "data-label": "Revoked", text: time(key.revoked_at) }),
        el("td", {}, key.revoked_at ? null : el("button", { type: "button", class: "danger", onclick: () => revokeKey(key), text: "Revoke…" }))));
    render(el("h2", { text: "API keys" }),
      el("p", { class: "muted", text: "Public metadata only: Cardinal never holds private keys." }),
      el("table", { class: "wide", id: "keys" },
        el("thead", {}, el("tr", {}, el("th", { text: "Key id" }), el("th", { text: "Role" }), el("th", { text: "Created" }), el("th", { text: "Revoked" }), el("th", {}))),
        el("tbody", {}, rows)));
  }

  async function revokeKey(key) {
    const ok = await confirmAction(`Revoke ${key.role} key ${key.kid}? Its tokens stop working within a second.`);
    if (ok === null) return;
    try {
      await api(`/v1/admin/keys/${encodeURIComponent(key.kid)}/revoke`, { method: "POST" });
      notice(`Revoked key ${key.kid}.`);
      await keys();
    } catch (error) {
      showError(error);
    }
  }

  async function events(params) {
    const after = Number(params.get("after") || 0);
    const [page, o] = await Promise.all([api(`/v1/admin/events?after=${after}&limit=100`), api("/v1/admin/overview")]);
    const rows = page.events.map((view) => {
      const detail = Object.entries(view.event.detail || {}).map(([k, v]) => `${k}=${v}`).join(" ");
      return el("tr", {},
        el("td", { "data-label": "Seq", text: view.seq }),
        el("td", { "data-label": "At", text: timeMs(view.event.at) }),
        el("td", { "data-label": "Kind", text: view.event.kind }),
        el("td", { "data-label": "Actor", text: view.event.actor }),
        el("td", { "data-label": "Identity", text: view.event.identity || "—" }),
        el("td", { "data-label": "Detail", text: detail }));
    });
    render(el("h2", { text: "Event log" }),
      o.log.intact ? el("p", { class: "intact", id: "log-status", text: `Intact: ${o.log.checked} events verified, head ${o.log.head.slice(0, 16)}…` })
        : el("p", { class: "broken", id: "log-status", text: `Does NOT verify: ${o.log.failure}` }),
      el("table", { class: "wide", id: "events" },
        el("thead", {}, el("tr", {}, ["Seq", "At", "Kind", "Actor", "Identity", "Detail"].map((h) => el("th", { text: h })))),
        el("tbody", {}, rows)),
      page.next > after && page.events.length === 100 ? el("a", { href: `#/events?after=${page.next}`, text: "Next page" }) : null);
  }

  async function route() {
    showError(null);
    if (!token()) {
      signedIn(false);
      $("token").focus();
      return;
    }
    signedIn(true);
    const hash = location.hash.replace(/^#\/?/, "") || "overview";
    const [path, queryText] = hash.split("?");
    const params = new URLSearchParams(queryText || "");
    try {
      if (path === "overview") await overview();
      else if (path === "identities") await identities(params);
      else if (path.startsWith("identity/")) await identity(decodeURIComponent(path.slice("identity/".length)));
      else if (path === "keys") await keys();
      else if (path === "events") await events(params);
      else await overview();
    } catch (error) {
      showError(error);
      if (error.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        signedIn(false);
      }
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("sign-in-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const value = $("token").value.trim().replace(/^Bearer\s+/i, "");
      sessionStorage.setItem(TOKEN_KEY, value);
      $("token").value = "";
      notice("");
      try {
        await api("/v1/admin/overview");
      } catch (error) {
        sessionStorage.removeItem(TOKEN_KEY);
        signedIn(false);
        showError(error);
        return;
      }
      if (location.hash === "#/overview") route();
      else location.hash = "#/overview";
    });
    $("sign-out").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      notice("Signed out.");
      location.hash = "";
      route();
    });
    window.addEventListener("hashchange", () => {
      notice("");
      route();
    });
    route();
  });
})();
