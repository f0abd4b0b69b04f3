// The console's only script: calls the JSON API (same origin, cookie session, Content-Type: application/json),
// shows results, copies text and draws the usage chart. Text from the server is set with textContent, never HTML.
"use strict";
(function () {
  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));
  const body = document.body;
  const perUnit = Number(body.dataset.quotaPerUnit) || 500000;

  function formatQuota(quota) {
    quota = Number(quota) || 0;
    if (body.dataset.currency === "1") {
      const amount = quota / perUnit;
      return "$" + amount.toLocaleString(undefined, { maximumFractionDigits: Math.abs(amount) >= 0.01 ? 4 : 8 });
    }
    return quota.toLocaleString();
  }

  function flash(message, ok) {
    const p = document.createElement("p");
    p.className = "flash " + (ok ? "ok" : "error");
    p.textContent = message;
    const box = $("#messages");
    box.replaceChildren(p);
    p.scrollIntoView({ block: "nearest" });
  }

  // A message to show after the page reloads.
  function flashLater(message, ok) {
    sessionStorage.setItem("oneapi-flash", JSON.stringify([message, ok]));
  }

  async function api(method, url, payload) {
    const options = { method, credentials: "same-origin",
      headers: { Accept: "application/json", "X-Requested-With": "XMLHttpRequest" } };
    if (payload !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(payload);
    }
    let reply;
    try {
      const response = await fetch(url, options);
      reply = await response.json().catch(() => ({ success: false, message: "HTTP " + response.status }));
    } catch (error) {
      reply = { success: false, message: "The server could not be reached: " + error.message };
    }
    return reply;
  }

  // "Saved {data:quota}" with values from the reply (or its data).
  function fill(template, reply) {
    return template.replace(/\{(\w+)(:quota)?\}/g, (_, name, quota) => {
      let value = name === "data" ? reply.data : (name in reply ? reply[name] : (reply.data || {})[name]);
      if (value === undefined || value === null) value = "";
      return quota ? formatQuota(value) : String(value);
    });
  }

  function showSecret(text, title, note) {
    const dialog = $("#secret-dialog");
    $("#secret-title").textContent = title || "Copy it now";
    $("#secret-note").textContent = note || "It will not be shown again.";
    $("#secret-value").textContent = text;
    dialog.showModal();
    return new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
  }

  async function afterSuccess(element, reply) {
    const show = element.dataset.show;
    if (show) {
      let secret = show === "key" ? reply.data.key : reply.data;
      if (Array.isArray(secret)) secret = secret.join("\n");
      await showSecret(String(secret));
    }
    const message = element.dataset.ok ? fill(element.dataset.ok, reply) : reply.message || "Saved.";
    const next = element.dataset.next;
    if (next === "stay" || element.hasAttribute("data-no-reload")) {
      flash(message, true);
      return;
    }
    flashLater(message, true);
    if (next) window.location.assign(next);
    else window.location.reload();
  }

  function formValues(form) {
    const values = {};
    for (const input of $$("input[name], select[name], textarea[name]", form)) {
      const type = input.dataset.type;
      let value = input.value;
      if (input.type === "checkbox") value = input.checked;
      else if (type === "int") value = value === "" ? undefined : Number(value);
      else if (type === "time") value = value ? Math.floor(new Date(value).getTime() / 1000) : -1;
      if (value === undefined || (input.hasAttribute("data-skip-empty") && value === "")) continue;
      values[input.name] = value;
    }
    return values;
  }

  async function submitApiForm(form) {
    const [method, url] = form.dataset.api.split(" ");
    const button = $("button[type=submit]", form);
    button.disabled = true;
    $("#messages").replaceChildren();
    try {
      const reply = await api(method, url, formValues(form));
      if (reply.success) await afterSuccess(form, reply);
      else flash(reply.message || "The request failed.", false);
    } finally {
      button.disabled = false;
    }
  }

  async function callButton(button) {
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    const [method, url] = button.dataset.call.split(" ");
    const payload = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
    button.disabled = true;
    $("#messages").replaceChildren();
    try {
      const reply = await api(method, url, payload);
      if (reply.success) await afterSuccess(button, reply);
      else flash(reply.message || "The request failed.", false);
    } finally {
      button.disabled = false;
    }
  }

  // "Send code": mail a verification code to the address in the input the button names.
  async function sendCode(button) {
    const input = $(button.dataset.sendCode);
    if (!input || !input.reportValidity()) return;
    const turnstile = $("[name=cf-turnstile-response]");
    let url = "/api/verification?email=" + encodeURIComponent(input.value.trim());
    if (turnstile && turnstile.value) url += "&turnstile=" + encodeURIComponent(turnstile.value);
    button.disabled = true;
    $("#messages").replaceChildren();
    const reply = await api("GET", url);
    flash(reply.success ? "A code has been sent to " + input.value.trim() + ". It is valid for 10 minutes." : (reply.message || "The code could not be sent."), reply.success);
    setTimeout(() => { button.disabled = false; }, reply.success ? 30000 : 0);
  }

  // Settings: PUT each changed option, one at a time, stopping at the first refusal.
  async function saveOptions(form) {
    const changed = [];
    for (const input of $$("input[name], textarea[name]", form)) {
      if (input.type === "checkbox") {
        if (input.checked !== input.defaultChecked) changed.push([input, input.checked ? "true" : "false"]);
      } else if (input.value !== input.defaultValue && !(input.hasAttribute("data-skip-empty") && !input.value)) {
        changed.push([input, input.value]);
      }
    }
    if (!changed.length) return flash("Nothing changed.", true);
    for (const [input, value] of changed) {
      const reply = await api("PUT", "/api/option/", { key: input.name, value });
      if (!reply.success) {
        input.focus();
        return flash(input.name + ": " + (reply.message || "refused"), false);
      }
    }
    flashLater("Saved " + changed.map(([input]) => input.name).join(", ") + ".", true);
    window.location.reload();
  }

  async function copy(text, button) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (error) {
      const area = document.createElement("textarea");
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1200);
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.matches("form[data-api]")) { event.preventDefault(); submitApiForm(form); }
    else if (form.matches("form[data-options]")) { event.preventDefault(); saveOptions(form); }
  });

  document.addEventListener("click", (event) => {
    const target = event.target.closest("button");
    if (!target) return;
    if (target.matches("[data-call]")) callButton(target);
    else if (target.matches("[data-copy]")) copy(target.dataset.copy, target);
    else if (target.matches("[data-copy-target]")) copy($(target.dataset.copyTarget).textContent, target);
    else if (target.id === "secret-close") $("#secret-dialog").close();
    else if (target.matches("[data-dismiss-notice]")) {
      const notice = $("#notice");
      localStorage.setItem("oneapi-notice-dismissed", notice.dataset.noticeId);
      notice.remove();
    } else if (target.matches("[data-send-code]")) {
      sendCode(target);
    } else if (target.matches("[data-aff]")) {
      api("GET", "/api/user/aff").then((reply) => {
        if (!reply.success) return flash(reply.message, false);
        const input = $("[data-aff-link]");
        input.value = window.location.origin + "/register?aff=" + encodeURIComponent(reply.data);
        target.textContent = "Copy";
        target.removeAttribute("data-aff");
        target.dataset.copy = input.value;
      });
    }
  });

  // Times: shown in the reader's time zone; datetime-local inputs filled the same way.
  const pad = (n) => String(n).padStart(2, "0");
  const localInput = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  for (const time of $$("time[data-ts]")) {
    time.textContent = localInput(new Date(Number(time.dataset.ts) * 1000)).replace("T", " ");
  }
  for (const input of $$("input[data-ts]")) {
    if (Number(input.dataset.ts) > 0) input.value = localInput(new Date(Number(input.dataset.ts) * 1000));
  }

  const notice = $("#notice");
  if (notice && localStorage.getItem("oneapi-notice-dismissed") === notice.dataset.noticeId) notice.remove();

  const pending = sessionStorage.getItem("oneapi-flash");
  if (pending) {
    sessionStorage.removeItem("oneapi-flash");
    const [message, ok] = JSON.parse(pending);
    flash(message, ok);
  }

  // Channel editor: the model names of the chosen type as chips that add or remove themselves.
  const channelForm = $("form[data-channel-form]");
  if (channelForm) {
    const byType = JSON.parse($("#models-by-type").textContent);
    const typeSelect = $("[data-channel-type]", channelForm);
    const modelsField = $("[data-models]", channelForm);
    const chips = $("[data-model-chips]");
    const current = () => modelsField.value.split(",").map((m) => m.trim()).filter(Boolean);
    const render = () => {
      const chosen = new Set(current());
      chips.replaceChildren(...(byType[typeSelect.value] || []).map((model) => {
        const chip = document.createElement("button");
        chip.type = "button";
        chip.className = "chip" + (chosen.has(model) ? " on" : "");
        chip.textContent = model;
        chip.addEventListener("click", () => {
          const list = current();
          modelsField.value = (list.includes(model) ? list.filter((m) => m !== model) : [...list, model]).join(",");
          render();
        });
        return chip;
      }));
      const base = typeSelect.selectedOptions[0].dataset.baseUrl;
      $("[data-base-url-input]", channelForm).placeholder = base || "https://your-endpoint.example.com";
    };
    typeSelect.addEventListener("change", render);
    modelsField.addEventListener("input", render);
    $("[data-models-all]").addEventListener("click", () => {
      modelsField.value = [...new Set([...current(), ...(byType[typeSelect.value] || [])])].join(",");
      render();
    });
    $("[data-models-clear]").addEventListener("click", () => { modelsField.value = ""; render(); });
    render();
  }

  // Dashboard: stacked bars per day and model, from GET /api/user/dashboard?days=N.
  const usage = $("[data-usage-chart]");
  if (usage) {
    const state = { days: 7, metric: "Quota" };
    const palette = ["#4263eb", "#12b886", "#f59f00", "#e64980", "#7950f2", "#15aabf", "#fa5252", "#82c91e", "#868e96"];
    const svgNS = "http://www.w3.org/2000/svg";
    const el = (name, attrs, text) => {
      const node = document.createElementNS(svgNS, name);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      if (text !== undefined) node.textContent = text;
      return node;
    };
    const measure = (row) => state.metric === "Tokens" ? row.PromptTokens + row.CompletionTokens : row[state.metric];
    const label = (v) => state.metric === "Quota" ? formatQuota(v) : Number(v).toLocaleString();

    const draw = (rows) => {
      const days = [];
      const today = new Date();
      for (let i = state.days - 1; i >= 0; i--) {
        const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
        days.push(d.toISOString().slice(0, 10));
      }
      const models = [...new Set(rows.map((r) => r.ModelName))].sort();
      const color = (m) => palette[models.indexOf(m) % palette.length];
      const totals = Object.fromEntries(days.map((d) => [d, 0]));
      for (const r of rows) if (r.Day in totals) totals[r.Day] += measure(r);
      const max = Math.ceil(Math.max(1, ...Object.values(totals)) / 4) * 4;  // whole-number ticks
      const W = 960, H = 300, left = 84, bottom = 28, top = 10;
      const plotH = H - bottom - top, step = (W - left - 8) / days.length, barW = Math.max(4, step * 0.65);
      const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `Usage over ${state.days} days` });
      for (let i = 0; i <= 4; i++) {
        const y = top + plotH - (plotH * i) / 4;
        svg.append(el("line", { x1: left, x2: W - 4, y1: y, y2: y, class: "grid" }));
        svg.append(el("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "axis" }, label((max * i) / 4)));
      }
      days.forEach((day, i) => {
        const x = left + i * step + (step - barW) / 2;
        let y = top + plotH;
        for (const r of rows.filter((row) => row.Day === day)) {
          const h = (measure(r) / max) * plotH;
          y -= h;
          const rect = el("rect", { x, y, width: barW, height: Math.max(h, 0), fill: color(r.ModelName), rx: 2 });
          rect.append(el("title", {}, `${day} · ${r.ModelName}: ${label(measure(r))}`));
          svg.append(rect);
        }
        if (state.days <= 7 || i % 5 === 0 || i === days.length - 1) {
          svg.append(el("text", { x: x + barW / 2, y: H - 8, "text-anchor": "middle", class: "axis" }, day.slice(5)));
        }
      });
      const chart = $("[data-chart]", usage);
      chart.replaceChildren(svg);
      if (!rows.length) {
        const p = document.createElement("p");
        p.className = "muted center";
        p.textContent = "No usage in this period yet.";
        chart.append(p);
      }
      $("[data-legend]", usage).replaceChildren(...models.map((m) => {
        const item = document.createElement("span");
        const dot = document.createElement("i");
        dot.style.background = color(m);
        item.append(dot, document.createTextNode(m));
        return item;
      }));
      const sums = {};
      for (const r of rows) {
        const s = sums[r.ModelName] || (sums[r.ModelName] = { n: 0, p: 0, c: 0, q: 0 });
        s.n += r.RequestCount; s.p += r.PromptTokens; s.c += r.CompletionTokens; s.q += r.Quota;
      }
      $("[data-model-table] tbody", usage).replaceChildren(...Object.entries(sums).map(([model, s]) => {
        const tr = document.createElement("tr");
        for (const [text, num] of [[model, false], [s.n.toLocaleString(), true], [s.p.toLocaleString(), true],
          [s.c.toLocaleString(), true], [formatQuota(s.q), true]]) {
          const td = document.createElement("td");
          td.textContent = text;
          if (num) td.className = "num";
          tr.append(td);
        }
        return tr;
      }));
    };

    let rows = [];
    const load = async () => {
      const reply = await api("GET", "/api/user/dashboard?days=" + state.days);
      if (!reply.success) return flash(reply.message, false);
      rows = reply.data;
      draw(rows);
    };
    usage.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      if (button.dataset.days) {
        state.days = Number(button.dataset.days);
        load();
      } else if (button.dataset.metric) {
        state.metric = button.dataset.metric;
        draw(rows);
      } else return;
      for (const b of button.parentElement.children) b.classList.toggle("active", b === button);
    });
    load();
  }

  window.oneapi = { api, flash, showSecret, formatQuota };
})();
