// The console's pages as Alpine components. Everything goes through /api/ (the console's server forwards it to
// the jobscheduler API); the workflow's drawing comes from /console/workflow.json (job.asl.json as Mermaid).
"use strict";

const TERMINAL = ["TerminatedOK", "TerminatedNOK", "TimedOut", "Cancelled", "Failed"];
const PAGE_SIZE = 20;
const POLL_MS = 1000;
// A schedules page costs the API a query per schedule (its recent jobs), and firings are minutes apart.
const SCHEDULES_POLL_MS = 3000;

async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    const response = await fetch("/api" + path, init);
    const body = response.status === 204 ? {} : await response.json(); // a 204 (a delete) has no body
    return { ok: response.ok, status: response.status, body };
  } catch (error) {
    return { ok: false, status: 0, body: { Message: "the console's server did not answer: " + error } };
  }
}

// Polls `step` now and every `ms` until it returns true or the component leaves the page.
function poll(component, step, ms = POLL_MS) {
  let stopped = false;
  const tick = async () => {
    if (stopped || !component.$root.isConnected) return;
    const done = await step();
    if (!done) setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; };
}

const when = (t) => (t ? t.replace("T", " ").replace(/(\.\d+)?Z$/, "") : "-");
// As the client prints dollars: $1.27, $0.0042, $0.00000017.
function usd(n) {
  if (n === null || n === undefined) return "-";
  if (Math.abs(n) >= 1 || n === 0) return "$" + Number(n).toFixed(2);
  const [whole, fraction] = Number(n).toFixed(8).replace(/0+$/, "").split(".");
  return "$" + whole + "." + fraction.padEnd(2, "0");
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 10) return seconds.toFixed(2) + " s";
  if (seconds < 60) return seconds.toFixed(1) + " s";
  const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
  if (m < 60) return `${m} min ${String(s).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

// Minutes ahead of UTC that `zone` is at the wall-clock time `wall` ("2026-12-01T09:30:00").
function zoneOffset(zone, wall) {
  const guess = Date.parse(wall + "Z");
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(guess));
  const v = Object.fromEntries(parts.map((p) => [p.type, Number(p.value)]));
  return (Date.UTC(v.year, v.month - 1, v.day, v.hour, v.minute, v.second) - guess) / 60000;
}

function rfc3339(wall, zone) {
  const full = wall.length === 16 ? wall + ":00" : wall;
  const offset = zoneOffset(zone, full), a = Math.abs(offset);
  const hhmm = String(Math.floor(a / 60)).padStart(2, "0") + ":" + String(a % 60).padStart(2, "0");
  return full + (offset < 0 ? "-" : "+") + hhmm;
}

// A member of an object field with typed members (retry, resources, written NAME=value) as its schema types it.
function typed(p, text) {
  const types = p ? [].concat(p.type) : [];
  if (types.includes("integer") || types.includes("number")) return Number(text);
  if (types.includes("boolean")) return text === "true";
  if (types.includes("array")) return text.split(",").map((x) => typed(p.items, x.trim()));
  return text;
}

document.addEventListener("alpine:init", () => {
  const Alpine = window.Alpine;
  const helpers = { when, usd, duration };

  Alpine.data("router", () => ({
    page: "jobs", jobId: null, schedules: false, checked: false,
    async init() {
      this.route();
      window.addEventListener("hashchange", () => this.route());
      const doc = await api("GET", "/openapi.json");
      this.schedules = doc.ok && Object.keys(doc.body.paths || {}).some((p) => p.startsWith("/schedules"));
      this.checked = doc.ok;
    },
    // Every change of address starts the page afresh (from one job's page to another's too).
    route() {
      const hash = location.hash.replace(/^#\/?/, "");
      const job = hash.match(/^jobs\/([A-Za-z0-9-]+)$/);
      this.page = null;
      this.$nextTick(() => {
        this.jobId = job ? job[1] : null;
        this.page = job ? "job" : hash === "schedules/new" ? "new-schedule"
          : ["new", "schedules"].includes(hash) ? hash : "jobs";
      });
    },
  }));

  Alpine.data("jobsPage", () => ({
    ...helpers, jobs: [], statuses: [], status: "", tokens: [null], pageIndex: 0, nextToken: null,
    error: "", loaded: false, perPage: String(PAGE_SIZE),
    async init() {
      const doc = await api("GET", "/openapi.json");
      if (doc.ok) this.statuses = doc.body.components.schemas.Status.enum || [];
      this.stop = poll(this, async () => { await this.load(); return false; });
    },
    destroy() { this.stop && this.stop(); },
    async load() {
      const query = new URLSearchParams({ limit: this.perPage });
      if (this.status) query.set("status", this.status);
      if (this.tokens[this.pageIndex]) query.set("nextToken", this.tokens[this.pageIndex]);
      const r = await api("GET", "/jobs?" + query);
      this.error = r.ok ? "" : r.body.Message;
      if (r.ok) { this.jobs = r.body.jobs; this.nextToken = r.body.nextToken; this.loaded = true; }
    },
    filter() { this.tokens = [null]; this.pageIndex = 0; this.load(); },
    next() { this.tokens[this.pageIndex + 1] = this.nextToken; this.pageIndex++; this.load(); },
    previous() { this.pageIndex--; this.load(); },
    instanceType(job) {
      const last = (job.attempts || []).at(-1);
      return last && last.instanceType ? last.instanceType : "-";
    },
    runtime(job) {
      if (!job.runningAt) return "-";
      const end = job.finishedAt || job.endedAt;
      return duration(((end ? Date.parse(end) : Date.now()) - Date.parse(job.runningAt)) / 1000);
    },
  }));

  Alpine.data("jobPage", (jobId) => ({
    ...helpers, job: null, states: [], passed: [], current: null, logs: [], error: "", graphText: "", zoomed: false,
    changes: 0,
    workflow: null, drawn: "",
    init() {
      let logToken = null, ended = false;
      this.stop = poll(this, async () => {
        const asked = this.changes;
        const [job, timeline] = await Promise.all([api("GET", `/jobs/${jobId}`), api("GET", `/jobs/${jobId}/timeline`)]);
        if (!job.ok) { this.error = job.body.Message; return job.status === 404; }
        if (asked !== this.changes) return false; // a cancel answered meanwhile: this read is older than it
        this.job = job.body;
        if (timeline.ok) await this.draw(timeline.body);
        // Read the logs until an empty page once the job has ended: then nothing more can come.
        for (;;) {
          const page = await api("GET", `/jobs/${jobId}/logs?` + new URLSearchParams(logToken ? { nextToken: logToken } : {}));
          if (!page.ok) break;
          logToken = page.body.nextToken;
          this.logs.push(...page.body.events.map((e) => e.message));
          if (!page.body.events.length) break;
        }
        const done = ended && "cost" in this.job;
        ended = TERMINAL.includes(this.job.status);
        return done;
      });
    },
    destroy() { this.stop && this.stop(); },
    // At full size the drawing is wider than the page: scroll to where the execution is (or ended).
    zoom() {
      this.zoomed = !this.zoomed;
      this.$nextTick(() => {
        const box = this.$root.querySelector("#graph");
        const state = this.current || this.states.map((s) => s.name).at(-1);
        const node = state && this.workflow && box.querySelector(`g.node[id*='-flowchart-${this.workflow.ids[state]}-']`);
        if (!this.zoomed || !node) return;
        const at = node.getBoundingClientRect(), frame = box.getBoundingClientRect();
        box.scrollLeft += at.left - frame.left - frame.width / 2;
        box.scrollTop += at.top - frame.top - frame.height / 2;
      });
    },
    // Each status the job has had, at the time its record says (a poll may have missed a short one).
    history() {
      const j = this.job, ended = TERMINAL.includes(j.status);
      const steps = [["Scheduled", j.createdAt], ["Requested", j.requestedAt], ["Running", j.runningAt],
        [j.exitCode === 0 ? "FinishedOK" : "FinishedNOK", j.finishedAt], [j.status, ended ? j.endedAt : null]];
      return steps.filter(([, at]) => at);
    },
    cancellable() { return this.job && !TERMINAL.includes(this.job.status) && !this.job.cancelRequested; },
    async cancel() {
      this.$refs.confirm.close();
      this.changes++;
      const r = await api("POST", `/jobs/${jobId}/cancel`);
      this.changes++;
      if (r.ok) this.job = r.body; else this.error = r.body.Message;
    },
    fields() {
      const j = this.job, rows = [["Job id", j.jobId], ["Image", j.image], ["Scheduled (UTC)", when(j.scheduledAt)]];
      if (j.command) rows.push(["Command", JSON.stringify(j.command)]);
      for (const [name, value] of Object.entries(j.env || {})) rows.push(["env " + name, value]);
      for (const [name, ref] of Object.entries(j.secrets || {})) rows.push(["secret " + name, "from " + ref]);
      rows.push(["Instance types", (j.instanceTypes || []).join(", ")], ["Capacity", j.capacity],
        ["Max runtime", duration(j.maxRuntimeSeconds)], ["Max attempts", j.maxAttempts]);
      if (j.heartbeatSeconds) rows.push(["Heartbeat", duration(j.heartbeatSeconds)]);
      if (j.finishBy) rows.push(["Finish by (UTC)", when(j.finishBy)]);
      if (j.exitCode !== undefined && j.exitCode !== null) rows.push(["Exit code", j.exitCode]);
      if (j.cancelRequested) rows.push(["Cancel requested (UTC)", when(j.cancelRequested)]);
      if (j.executionArn) rows.push(["Execution", j.executionArn]);
      return rows;
    },
    costText() {
      const c = this.job.cost;
      if (!c) return TERMINAL.includes(this.job.status) ? "being computed" : "known once the job ends";
      if (c.estimated === null) return "unknown (no price for this instance type)";
      let text = `${usd(c.estimated)} estimated for ${duration(c.billedSeconds)} of instance time`;
      if (c.saving !== null) text += `; ${usd(c.saving)} (${c.savingPercent || 0} %) less than On-Demand (${usd(c.onDemand)})`;
      return text;
    },
    // The flowchart from job.asl.json, its passed states and the current one given their own classes.
    async draw(timeline) {
      this.states = timeline.states;
      const running = timeline.executionStatus === "RUNNING";
      const last = timeline.states.at(-1);
      this.current = running && last && !last.exitedAt ? last.name : null;
      this.passed = [...new Set(timeline.states.map((s) => s.name).filter((n) => n !== this.current))];
      this.graphText = "passed: " + (this.passed.join(", ") || "none") + (this.current ? "; now in " + this.current : "");
      if (!this.workflow) {
        const r = await fetch("/console/workflow.json");
        this.workflow = await r.json();
        window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral" });
      }
      const ids = (names) => names.map((n) => this.workflow.ids[n]).filter(Boolean).join(",");
      let text = this.workflow.mermaid + "\n    classDef passed fill:#c8f0cf,stroke:#1b7a2e,stroke-width:2px" +
        "\n    classDef current fill:#ffe08a,stroke:#9a5b00,stroke-width:4px";
      if (this.passed.length) text += "\n    class " + ids(this.passed) + " passed";
      if (this.current) text += "\n    class " + ids([this.current]) + " current";
      if (text === this.drawn) return;
      this.drawn = text;
      const { svg } = await window.mermaid.render("workflow-" + Date.now(), text);
      const target = this.$root.querySelector("#graph");
      if (target) target.innerHTML = svg;
    },
  }));

  // Recurring schedules (the router shows the page only when the API's OpenAPI document has /schedules):
  // paged like the jobs, refreshed every few seconds; Pause/Resume is PATCH {enabled}, Delete asks first.
  Alpine.data("schedulesPage", () => ({
    ...helpers, schedules: [], tokens: [null], pageIndex: 0, nextToken: null, perPage: String(PAGE_SIZE),
    error: "", loaded: false, deleting: null, changes: 0,
    init() { this.stop = poll(this, async () => { await this.load(); return false; }, SCHEDULES_POLL_MS); },
    destroy() { this.stop && this.stop(); },
    async load() {
      const asked = this.changes;
      const query = new URLSearchParams({ limit: this.perPage });
      if (this.tokens[this.pageIndex]) query.set("nextToken", this.tokens[this.pageIndex]);
      const r = await api("GET", "/schedules?" + query);
      if (asked !== this.changes) return; // a pause, resume or delete answered meanwhile: this read is older
      this.error = r.ok ? "" : r.body.Message;
      if (r.ok) { this.schedules = r.body.schedules; this.nextToken = r.body.nextToken; this.loaded = true; }
    },
    filter() { this.tokens = [null]; this.pageIndex = 0; this.load(); },
    next() { this.tokens[this.pageIndex + 1] = this.nextToken; this.pageIndex++; this.load(); },
    previous() { this.pageIndex--; this.load(); },
    label(s) { return s.name || s.scheduleId; },
    async setEnabled(s, enabled) {
      this.changes++;
      const r = await api("PATCH", "/schedules/" + s.scheduleId, { enabled });
      this.changes++;
      if (r.ok) this.schedules = this.schedules.map((x) => (x.scheduleId === s.scheduleId ? r.body : x));
      else this.error = r.body.Message;
    },
    ask(s) { this.deleting = s; this.$nextTick(() => this.$refs.confirm.showModal()); },
    async remove() {
      const s = this.deleting;
      this.$refs.confirm.close();
      this.changes++;
      const r = await api("DELETE", "/schedules/" + s.scheduleId);
      this.changes++;
      if (r.ok) this.schedules = this.schedules.filter((x) => x.scheduleId !== s.scheduleId);
      else this.error = r.body.Message;
    },
  }));

  // New job, or new schedule (forSchedule): one control per field of the API's JobBody schema (ScheduleBody's
  // own fields first for a schedule, the job's then named job.<field> as the API names them in its messages).
  Alpine.data("newJobPage", (forSchedule) => ({
    fields: [], values: {}, zones: {}, errors: {}, error: "", busy: false, forSchedule,
    timeZones: Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : ["UTC"],
    // A file can be picked before the schema has come: fromFile waits for it (ready).
    init() { this.ready = this.load(); },
    async load() {
      const doc = await api("GET", "/openapi.json");
      if (!doc.ok) { this.error = doc.body.Message; return; }
      const schemas = doc.body.components.schemas;
      const here = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
      if (!this.timeZones.includes(here)) this.timeZones = [here, ...this.timeZones];
      const fields = (schema, prefix, skip) => Object.entries(schema.properties)
        .filter(([name]) => !skip.includes(name)).map(([name, p]) => this.field(name, p, schema.required || [], prefix));
      this.fields = forSchedule
        ? [...fields(schemas.ScheduleBody, "", ["job"]), ...fields(schemas.JobBody, "job.", ["scheduledAt"])]
        : fields(schemas.JobBody, "", []);
      const firstOfJob = this.fields.find((f) => f.job);
      if (firstOfJob) firstOfJob.firstOfJob = true;
      for (const f of this.fields) { this.values[f.name] = ""; if (f.kind === "time") this.zones[f.name] = here; }
    },
    // One control per schema property: its type says which.
    field(prop, p, required, prefix) {
      const types = [].concat(p.type);
      const zone = prop === "timezone", bool = types.includes("boolean");
      const kind = p.enum || zone || bool ? "select" : p.format === "date-time" ? "time"
        : types.includes("integer") ? "number" : types.includes("array") || types.includes("object") ? "lines" : "text";
      const map = types.includes("object"), list = types.includes("array");
      let help = p.description || (p.items && p.items.description) || "";
      if (map) help += " One NAME=value per line.";
      if (list) help += " One item per line.";
      if (p.default !== undefined) help += ` Default: ${p.default}.`;
      if (kind === "time") help += prefix || forSchedule ? "" : " Empty: now.";
      let label = prop.replace(/([A-Z])/g, " $1").replace(/^./, (c) => c.toUpperCase());
      if (prefix && prop === "name") label = "Job name"; // the schedule has a name of its own
      const options = zone ? this.timeZones : bool ? ["true", "false"] : p.enum;
      return { name: prefix + prop, prop, job: Boolean(prefix), label, kind, map, list, bool,
        members: p.properties || {}, required: required.includes(prop), options, placeholder: p.example || "",
        help: help.trim() };
    },
    // A job file fills the job's fields (a schedule's own fields stay as they are).
    fromFile(event) {
      const file = event.target.files[0];
      if (!file) return;
      Promise.all([file.text(), this.ready]).then(([text]) => {
        let body;
        try { body = JSON.parse(text); } catch (e) { this.error = file.name + " is not JSON: " + e.message; return; }
        for (const f of this.fields.filter((x) => x.job || !forSchedule)) {
          const v = body[f.prop];
          if (v === undefined || v === null) this.values[f.name] = "";
          else if (f.map) this.values[f.name] = Object.entries(v).map(([k, x]) => `${k}=${x}`).join("\n");
          else if (f.list) this.values[f.name] = v.join("\n");
          else if (f.kind === "time") { this.values[f.name] = v.slice(0, 19); this.zones[f.name] = "UTC"; }
          else this.values[f.name] = String(v);
        }
      });
    },
    body() {
      const body = {}, job = {};
      for (const f of this.fields) {
        const raw = this.values[f.name], into = f.job ? job : body;
        if (raw === "" || raw === null || raw === undefined) continue;
        if (f.map) {
          into[f.prop] = Object.fromEntries(raw.split("\n").filter((l) => l.trim()).map((l) => {
            const at = l.indexOf("=");
            const name = (at < 0 ? l : l.slice(0, at)).trim();
            return [name, typed(Object.hasOwn(f.members, name) && f.members[name], at < 0 ? "" : l.slice(at + 1))];
          }));
        } else if (f.list) into[f.prop] = raw.split("\n").filter((l) => l !== "");
        else if (f.kind === "number") into[f.prop] = Number(raw);
        else if (f.bool) into[f.prop] = raw === "true";
        else if (f.kind === "time") into[f.prop] = rfc3339(raw, this.zones[f.name]);
        else into[f.prop] = raw;
      }
      return forSchedule ? { ...body, job } : body;
    },
    async submit() {
      this.busy = true; this.errors = {}; this.error = "";
      const r = await api("POST", forSchedule ? "/schedules" : "/jobs", this.body());
      this.busy = false;
      if (r.ok) { location.hash = forSchedule ? "#/schedules" : "#/jobs/" + r.body.jobId; return; }
      // The API's message starts with the field it is about: "maxRuntimeSeconds: must be ...", "env.NAME: ...",
      // "job.image: ...": the longest field name it starts with is the field.
      const message = r.body.Message || JSON.stringify(r.body);
      const field = this.fields.map((f) => f.name).filter((n) => /^[:.[]/.test(message.slice(n.length)) &&
        message.startsWith(n)).sort((a, b) => b.length - a.length)[0];
      if (field) {
        this.errors[field] = message;
        this.$nextTick(() => document.getElementById("f-" + field).focus());
      } else this.error = message;
    },
  }));
});
