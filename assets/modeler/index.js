// The process modeler page and the form editor page (bundled by assets/build.mjs with esbuild
// into app/static/vendor/modeler/index.js + index.css).
//
// - bpmn-js Modeler with the standard properties panel (names, timers, ...) plus this product's
//   group: a user task's form (spiffworkflow:properties formJsonSchemaFilename), a lane's role
//   (lane name = role code), a sequence flow's condition and a script task's script.
// - Save, check and deploy talk to /modeler/...; every answer carries the validation problems,
//   which are drawn on the elements they name (a red marker and a "!" badge) and listed.
// - The form editor previews a JSON Schema with the server's renderer as you type.
import BpmnModeler from "bpmn-js/lib/Modeler";
import { getBusinessObject, is } from "bpmn-js/lib/util/ModelUtil";
import {
  BpmnPropertiesPanelModule,
  BpmnPropertiesProviderModule,
  useService,
} from "bpmn-js-properties-panel";
import {
  Group,
  isSelectEntryEdited,
  isTextAreaEntryEdited,
  isTextFieldEntryEdited,
  SelectEntry,
  TextAreaEntry,
  TextFieldEntry,
} from "@bpmn-io/properties-panel";
import { h } from "@bpmn-io/properties-panel/preact";

import spiffworkflowDescriptor from "./spiffworkflow.json";

import "bpmn-js/dist/assets/diagram-js.css";
import "bpmn-js/dist/assets/bpmn-js.css";
import "bpmn-js/dist/assets/bpmn-font/css/bpmn-embedded.css";
import "@bpmn-io/properties-panel/assets/properties-panel.css";
import "./modeler.css";

// ------------------------------------------------------------------------------------------
// spiffworkflow:properties on an element

function findProperties(element) {
  const extensions = getBusinessObject(element).extensionElements;
  if (!extensions) return null;
  return (extensions.get("values") || []).find((value) => is(value, "spiffworkflow:Properties")) || null;
}

function getProperty(element, name) {
  const properties = findProperties(element);
  const property = properties && (properties.get("properties") || []).find((p) => p.name === name);
  return property ? property.value || "" : "";
}

function setProperty(element, name, value, { modeling, moddle, bpmnFactory }) {
  const bo = getBusinessObject(element);
  let extensions = bo.extensionElements;
  if (!extensions) {
    extensions = bpmnFactory.create("bpmn:ExtensionElements", { values: [] });
    extensions.$parent = bo;
    modeling.updateModdleProperties(element, bo, { extensionElements: extensions });
  }
  let properties = findProperties(element);
  if (!properties) {
    properties = moddle.create("spiffworkflow:Properties", { properties: [] });
    properties.$parent = extensions;
    modeling.updateModdleProperties(element, extensions, { values: [...(extensions.get("values") || []), properties] });
  }
  const list = properties.get("properties") || [];
  const property = list.find((p) => p.name === name);
  if (!value) {
    if (property) {
      modeling.updateModdleProperties(element, properties, { properties: list.filter((p) => p !== property) });
    }
    return;
  }
  if (property) {
    modeling.updateModdleProperties(element, property, { value });
  } else {
    const created = moddle.create("spiffworkflow:Property", { name, value });
    created.$parent = properties;
    modeling.updateModdleProperties(element, properties, { properties: [...list, created] });
  }
}

function services() {
  return {
    modeling: useService("modeling"),
    moddle: useService("moddle"),
    bpmnFactory: useService("bpmnFactory"),
    debounce: useService("debounceInput"),
    options: useService("config.tiaojie"),
  };
}

// ------------------------------------------------------------------------------------------
// Entries of the product's group

function FormEntry(props) {
  const { element, id } = props;
  const s = services();
  const current = getProperty(element, "formJsonSchemaFilename");
  const forms = [...new Set([...(s.options.forms || []), ...(current ? [current] : [])])].sort();
  return h(SelectEntry, {
    element, id, label: s.options.messages.form,
    getValue: () => getProperty(element, "formJsonSchemaFilename"),
    setValue: (value) => setProperty(element, "formJsonSchemaFilename", value, s),
    getOptions: () => [{ value: "", label: s.options.messages.noForm }, ...forms.map((f) => ({ value: f, label: f }))],
  });
}

function UiSchemaEntry(props) {
  const { element, id } = props;
  const s = services();
  return h(TextFieldEntry, {
    element, id, label: s.options.messages.uiSchema, debounce: s.debounce,
    getValue: () => getProperty(element, "formUiSchemaFilename"),
    setValue: (value) => setProperty(element, "formUiSchemaFilename", (value || "").trim(), s),
  });
}

function RoleEntry(props) {
  const { element, id } = props;
  const s = services();
  const current = getBusinessObject(element).name || "";
  const roles = s.options.roles || [];
  const options = roles.map((role) => ({ value: role.code, label: `${role.label} (${role.code})` }));
  if (current && !roles.some((role) => role.code === current)) {
    options.unshift({ value: current, label: `${current} — ${s.options.messages.notARole}` });
  }
  return h(SelectEntry, {
    element, id, label: s.options.messages.role,
    description: s.options.messages.roleHint,
    getValue: () => getBusinessObject(element).name || "",
    setValue: (value) => s.modeling.updateLabel(element, value),
    getOptions: () => [{ value: "", label: "—" }, ...options],
  });
}

function ConditionEntry(props) {
  const { element, id } = props;
  const s = services();
  return h(TextFieldEntry, {
    element, id, label: s.options.messages.condition, debounce: s.debounce,
    description: s.options.messages.conditionHint,
    getValue: () => {
      const expression = getBusinessObject(element).conditionExpression;
      return expression ? expression.body || "" : "";
    },
    setValue: (value) => {
      const text = (value || "").trim();
      s.modeling.updateProperties(element, {
        conditionExpression: text ? s.bpmnFactory.create("bpmn:FormalExpression", { body: text }) : undefined,
      });
    },
  });
}

function ScriptEntry(props) {
  const { element, id } = props;
  const s = services();
  return h(TextAreaEntry, {
    element, id, label: s.options.messages.script, debounce: s.debounce, rows: 8, monospace: true,
    getValue: () => getBusinessObject(element).script || "",
    setValue: (value) => s.modeling.updateProperties(element, { script: value || "" }),
  });
}

function TiaojiePropertiesProvider(propertiesPanel, options) {
  this.getGroups = function (element) {
    return function (groups) {
      const entries = [];
      if (is(element, "bpmn:UserTask")) {
        entries.push({ id: "tjForm", component: FormEntry, isEdited: isSelectEntryEdited });
        entries.push({ id: "tjUiSchema", component: UiSchemaEntry, isEdited: isTextFieldEntryEdited });
      }
      if (is(element, "bpmn:Lane")) {
        entries.push({ id: "tjRole", component: RoleEntry, isEdited: isSelectEntryEdited });
      }
      if (is(element, "bpmn:SequenceFlow")) {
        entries.push({ id: "tjCondition", component: ConditionEntry, isEdited: isTextFieldEntryEdited });
      }
      if (is(element, "bpmn:ScriptTask")) {
        entries.push({ id: "tjScript", component: ScriptEntry, isEdited: isTextAreaEntryEdited });
      }
      if (entries.length) {
        groups.splice(1, 0, {
          id: "tiaojie", label: options.messages.group, component: Group,
          entries: entries.map((entry) => ({ ...entry, element })),
        });
      }
      return groups;
    };
  };
  propertiesPanel.registerProvider(400, this);  // after getGroups exists: the panel checks for it
}
TiaojiePropertiesProvider.$inject = ["propertiesPanel", "config.tiaojie"];

const TiaojieModule = {
  __init__: ["tiaojiePropertiesProvider"],
  tiaojiePropertiesProvider: ["type", TiaojiePropertiesProvider],
};

// ------------------------------------------------------------------------------------------
// Talking to the server

async function postJson(url, body, csrf) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
    body: JSON.stringify(body),
  });
  let data = {};
  try {
    data = await response.json();
  } catch (error) {
    data = { message: `${response.status} ${response.statusText}` };
  }
  return { status: response.status, data };
}

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

// ------------------------------------------------------------------------------------------
// The modeler page

function mountModeler(config) {
  const messages = config.messages;
  const modeler = new BpmnModeler({
    container: "#canvas",
    propertiesPanel: { parent: "#properties" },
    additionalModules: [BpmnPropertiesPanelModule, BpmnPropertiesProviderModule, TiaojieModule],
    moddleExtensions: { spiffworkflow: spiffworkflowDescriptor },
    tiaojie: config,
  });
  window.tiaojieModeler = modeler;
  const status = document.getElementById("modeler-status");
  const list = document.getElementById("problems");
  const canvas = modeler.get("canvas");
  const overlays = modeler.get("overlays");
  const registry = modeler.get("elementRegistry");
  let marked = [];
  let dirty = false;
  let busy = false;

  function centerOn(id) {
    // scrollToElement() leaves the element at the edge, under the palette: centre it instead.
    const element = registry.get(id);
    if (canvas.zoom() < 1) canvas.zoom(1);  // readable, and the element bigger than its badge
    const box = canvas.viewbox();
    const middle = element.waypoints
      ? element.waypoints[Math.floor(element.waypoints.length / 2)]
      : { x: element.x + element.width / 2, y: element.y + element.height / 2 };
    canvas.viewbox({ x: middle.x - box.width / 2, y: middle.y - box.height / 2, width: box.width, height: box.height });
  }
  modeler.centerOn = centerOn;

  function say(text, kind = "") {
    status.textContent = text;
    status.className = `modeler-status ${kind}`;
  }

  function showProblems(problems) {
    overlays.remove({ type: "tj-problem" });
    marked.forEach(([id, cls]) => canvas.removeMarker(id, cls));
    marked = [];
    list.replaceChildren();
    const byElement = new Map();
    for (const problem of problems) {
      const item = el("li", { class: `problem ${problem.severity}`, "data-element-id": problem.element_id || "" });
      const where = [problem.file, problem.element_id].filter(Boolean).join(" · ");
      item.append(el("span", { class: "tag" }, problem.severity === "error" ? messages.error : messages.warning));
      if (where) item.append(el("code", {}, where));
      item.append(el("span", { class: "message" }, problem.message));
      const here = problem.file === config.file && problem.element_id && registry.get(problem.element_id);
      if (here) {
        item.classList.add("locatable");
        item.addEventListener("click", () => {
          modeler.get("selection").select(registry.get(problem.element_id));
          centerOn(problem.element_id);
        });
        if (!byElement.has(problem.element_id)) byElement.set(problem.element_id, []);
        byElement.get(problem.element_id).push(problem);
      } else if (problem.file && problem.file !== config.file && config.fileUrls[problem.file]) {
        const link = el("a", { href: config.fileUrls[problem.file] }, messages.openFile);
        item.append(" ", link);
      }
      list.append(item);
    }
    for (const [id, found] of byElement) {
      const severity = found.some((p) => p.severity === "error") ? "error" : "warning";
      const cls = `tj-${severity}`;
      canvas.addMarker(id, cls);
      marked.push([id, cls]);
      const badge = el("div", { class: `tj-badge ${cls}`, "data-problem-for": id, title: found.map((p) => p.message).join("\n") }, "!");
      overlays.add(id, "tj-problem", { position: { top: -10, right: 10 }, html: badge });
    }
    const errors = problems.filter((p) => p.severity === "error").length;
    document.getElementById("problem-count").textContent = errors ? `${errors}` : "";
    return errors;
  }

  async function xml() {
    return (await modeler.saveXML({ format: true })).xml;
  }

  async function save() {
    const result = await postJson(config.saveUrl, { content: await xml(), base_version_id: config.baseVersionId }, config.csrf);
    if (result.status !== 200) {
      say(result.data.message || messages.failed, "error");
      return false;
    }
    dirty = false;
    const errors = showProblems(result.data.problems || []);
    say(errors ? messages.savedWithProblems.replace("%(n)s", errors) : messages.saved, errors ? "error" : "ok");
    return true;
  }

  async function check() {
    const result = await postJson(config.checkUrl, { file: config.file, content: await xml() }, config.csrf);
    const errors = showProblems(result.data.problems || []);
    say(errors ? messages.problems.replace("%(n)s", errors) : messages.valid, errors ? "error" : "ok");
  }

  async function deploy() {
    if (dirty && !(await save())) return;
    const note = document.getElementById("deploy-note");
    const result = await postJson(config.deployUrl, { note: note ? note.value : "" }, config.csrf);
    if (result.status === 201 || result.status === 200) {
      showProblems(result.data.warnings || []);
      const text = result.status === 201 ? messages.deployed : messages.unchanged;
      say(text.replace("%(version)s", result.data.version), "ok");
      document.body.dataset.deployedVersion = String(result.data.version);
    } else {
      showProblems(result.data.problems || []);
      say(result.data.message || messages.failed, "error");
    }
  }

  function guard(action) {
    return async (event) => {
      event.preventDefault();
      if (busy) return;
      busy = true;
      document.body.classList.add("busy");
      try {
        await action();
      } catch (error) {
        say(`${messages.failed}: ${error.message || error}`, "error");
      } finally {
        busy = false;
        document.body.classList.remove("busy");
      }
    };
  }

  modeler.on("commandStack.changed", () => {
    dirty = true;
    say(messages.unsaved, "");
  });
  window.addEventListener("beforeunload", (event) => {
    if (dirty) event.preventDefault();
  });
  const bind = (id, action) => {
    const button = document.getElementById(id);
    if (button) button.addEventListener("click", guard(action));
  };
  bind("save-draft", save);
  bind("check-diagram", check);
  bind("deploy-key", deploy);

  modeler.importXML(config.xml).then(({ warnings }) => {
    canvas.zoom("fit-viewport");
    if (warnings && warnings.length) console.warn(warnings);
    showProblems(config.problems || []);
    say(config.isDraft ? messages.draftLoaded : messages.versionLoaded);
    document.body.dataset.modelerReady = "1";
  }).catch((error) => say(`${messages.importFailed}: ${error.message}`, "error"));
}

// ------------------------------------------------------------------------------------------
// The form editor page: live preview with the server's renderer

function mountFormEditor(config) {
  const text = document.getElementById("schema-text");
  const preview = document.getElementById("form-preview");
  const problem = document.getElementById("schema-problem");
  let timer = null;
  let sequence = 0;
  async function refresh() {
    const mine = ++sequence;
    const result = await postJson(config.previewUrl, { schema: text.value }, config.csrf);
    if (mine !== sequence) return;  // a newer keystroke already asked
    problem.textContent = result.data.error || "";
    if (result.data.html !== undefined && result.data.html !== null) {
      preview.innerHTML = result.data.html;  // rendered and escaped by the server (markupsafe)
    }
    preview.dataset.previewed = String(mine);
  }
  text.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
}

function start() {
  const modelerConfig = document.getElementById("modeler-config");
  if (modelerConfig) mountModeler(JSON.parse(modelerConfig.textContent));
  const formConfig = document.getElementById("form-editor-config");
  if (formConfig) mountFormEditor(JSON.parse(formConfig.textContent));
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}

export { mountFormEditor, mountModeler };
