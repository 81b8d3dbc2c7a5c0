#!/usr/bin/env node
// Opens lessons in a running JupyterLab in headless Chromium (Debian's, through playwright-core),
// runs all cells as a student would, then moves every control of every interactive widget once and
// watches what the page shows. tools/live.py starts the server, writes the spec and judges the reports.
//
//     node tools/lab_browser.cjs spec.json
//
// spec.json: {"chromium": "/usr/bin/chromium", "base": "http://127.0.0.1:8888", "token": "...",
//             "run_timeout_s": 300, "redraw_timeout_s": 240,
//             "lessons": [{"name": "01_minimax", "path": "01_minimax.ipynb", "screenshots": "/abs/dir"}]}
// Prints one JSON report per lesson (a list) on stdout.
"use strict";

const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

// In the page: the open notebook's panel, and a record of what its kernel reports.
function watchKernel() {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  window.__live = { kernelErrors: [], panel };
  panel.sessionContext.iopubMessage.connect((_, msg) => {
    if (msg.header.msg_type === "error") {
      window.__live.kernelErrors.push(`${msg.content.ename}: ${msg.content.evalue}`.slice(0, 300));
    }
  });
}

function notebookReady() {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  if (!panel || !panel.sessionContext || !panel.content) return false;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return Boolean(kernel && kernel.status === "idle" && panel.content.widgets.length > 0);
}

function runAll() {
  return window.jupyterapp.commands.execute("notebook:run-all-cells").then(() => true);
}

function cellStates() {
  const panel = window.__live.panel;
  return panel.content.widgets.map((cell, index) => {
    const model = cell.model;
    if (model.type !== "code") return null;
    const outputs = model.toJSON().outputs || [];
    return {
      index,
      count: model.executionCount,
      errors: outputs.filter((o) => o.output_type === "error").map((o) => `${o.ename}: ${o.evalue}`.slice(0, 300)),
      // outputs holding a control: one per explorer (ganlib.widgets.explore shows one box of controls)
      widgets: Array.from(cell.node.querySelectorAll(".jp-OutputArea-child"))
        .filter((child) => child.querySelector(".widget-slider, .widget-dropdown")).length,
      empty: model.sharedModel.getSource().trim() === "",
    };
  }).filter(Boolean);
}

function kernelIdle() {
  const kernel = window.__live.panel.sessionContext.session.kernel;
  return kernel.status === "idle";
}

// What a widget cell shows: its images (the figure), the status line, and its controls.
function widgetCellView(index) {
  const cell = window.__live.panel.content.widgets[index];
  const area = cell.node.querySelector(".jp-Cell-outputArea") || cell.node;
  const images = Array.from(area.querySelectorAll("img")).filter((img) => !img.closest(".jupyter-widgets"));
  const status = area.querySelector(".widget-html-content, .widget-html");
  const controls = [];
  area.querySelectorAll(".widget-slider, .widget-dropdown").forEach((el, i) => {
    const label = el.querySelector(".widget-label");
    const handle = el.querySelector(".noUi-handle");
    const select = el.querySelector("select");
    controls.push({
      i,
      kind: select ? "dropdown" : "slider",
      name: label ? label.textContent.trim() : `control ${i}`,
      now: handle ? handle.getAttribute("aria-valuenow") : select ? select.value : null,
      max: handle ? handle.getAttribute("aria-valuemax") : null,
      options: select ? Array.from(select.options).map((o) => o.value) : null,
    });
  });
  return {
    images: images.length,
    srcs: images.map((img) => img.src.slice(-200)),
    decoded: images.every((img) => img.complete && img.naturalWidth > 0),
    status: status ? status.textContent.trim() : null,
    controls,
  };
}

async function moveControl(page, index, control) {
  const cell = page.locator(".jp-Notebook .jp-Cell").nth(index);
  const el = cell.locator(".widget-slider, .widget-dropdown").nth(control.i);
  if (control.kind === "dropdown") {
    const next = control.options[(control.options.indexOf(control.now) + 1) % control.options.length];
    await el.locator("select").selectOption(next);
    return `${control.name} ${control.now} -> ${next}`;
  }
  const handle = el.locator(".noUi-handle");
  await handle.focus();
  const atMax = Number(control.now) >= Number(control.max);
  await handle.press(atMax ? "ArrowLeft" : "ArrowRight");
  return `${control.name} ${control.now} -> ${atMax ? "one step down" : "one step up"}`;
}

async function tryWidgets(page, spec, lesson, report) {
  const cells = await page.evaluate(cellStates);
  for (const c of cells.filter((c) => c.widgets > 0)) {
    await page.locator(".jp-Notebook .jp-Cell").nth(c.index).scrollIntoViewIfNeeded();
    const first = await page.evaluate(widgetCellView, c.index);
    const widget = { cell: c.index, controls: [], before: first };
    report.widgets.push(widget);
    for (const control of first.controls) {
      const before = await page.evaluate(widgetCellView, c.index);
      const shotBase = path.join(lesson.screenshots, `cell${c.index}-${control.name.replace(/\W+/g, "_")}`);
      const cellLoc = page.locator(".jp-Notebook .jp-Cell").nth(c.index);
      await cellLoc.screenshot({ path: `${shotBase}-before.png` });
      const current = before.controls[control.i];
      const start = Date.now();
      const moved = await moveControl(page, c.index, current);
      let after = null;
      let during = null;
      const statusOf = (i) => {
        const s = window.__live.panel.content.widgets[i].node.querySelector(".jp-Cell-outputArea .widget-html");
        return s ? s.textContent.trim() : "";
      };
      for (let waited = 0; waited < spec.redraw_timeout_s * 1000; waited += 500) {  // a slow redraw's progress: keep a picture
        const now = await page.evaluate(statusOf, c.index);
        if (now !== before.status && /^(Shown|Could not)/.test(now)) break;  // the old status says "Shown" too
        if (/: [\d.]+ \/ [\d.]+$/.test(now)) {  // "training for ...: 150 / 1500"
          during = { status: now, screenshot: `${shotBase}-during.png` };
          await cellLoc.screenshot({ path: during.screenshot });
          break;
        }
        await page.waitForTimeout(500);
      }
      try {
        await page.waitForFunction(([i, old]) => {
          const cell = window.__live.panel.content.widgets[i];
          const imgs = Array.from(cell.node.querySelectorAll(".jp-Cell-outputArea img")).filter((img) => !img.closest(".jupyter-widgets"));
          const status = cell.node.querySelector(".jp-Cell-outputArea .widget-html-content, .jp-Cell-outputArea .widget-html");
          const changed = imgs.length > 0 && imgs[0].src.slice(-200) !== old;
          const settled = !status || /^(Shown|Could not)/.test(status.textContent.trim());
          return changed && settled && window.__live.panel.sessionContext.session.kernel.status === "idle";
        }, [c.index, before.srcs[0]], { timeout: spec.redraw_timeout_s * 1000, polling: 250 });
      } catch (err) {
        widget.controls.push({ moved, seconds: (Date.now() - start) / 1000, error: `no redraw: ${String(err).slice(0, 200)}` });
        continue;
      }
      await page.waitForTimeout(500);  // a second copy of the figure, if any, would arrive now
      after = await page.evaluate(widgetCellView, c.index);
      await cellLoc.screenshot({ path: `${shotBase}-after.png` });
      widget.controls.push({ moved, seconds: (Date.now() - start) / 1000, imagesBefore: before.images,
        imagesAfter: after.images, changed: after.srcs[0] !== before.srcs[0], decoded: after.decoded,
        status: after.status, during, screenshots: [`${shotBase}-before.png`, `${shotBase}-after.png`] });
    }
  }
}

async function checkLesson(browser, spec, lesson) {
  const report = { name: lesson.name, consoleErrors: [], pageErrors: [], externalRequests: [], widgets: [] };
  fs.mkdirSync(lesson.screenshots, { recursive: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("console", (msg) => { if (msg.type() === "error") report.consoleErrors.push(msg.text().slice(0, 300)); });
  page.on("pageerror", (err) => report.pageErrors.push(String(err).slice(0, 300)));
  const origin = new URL(spec.base).origin;
  await page.route("**/*", (route) => {  // the lesson must need nothing beyond the local server
    const u = route.request().url();
    if (u.startsWith(origin) || /^(data|blob|about):/.test(u)) return route.continue();
    report.externalRequests.push(u.slice(0, 120));
    return route.abort();
  });
  const start = Date.now();
  try {
    const url = `${spec.base}/lab/workspaces/live-${lesson.name}/tree/${lesson.path}?reset&token=${spec.token}`;
    await page.goto(url, { waitUntil: "load" });
    await page.waitForFunction(notebookReady, null, { timeout: 120000, polling: 500 });
    await page.evaluate(watchKernel);
    const runStart = Date.now();
    let timer;
    await Promise.race([
      page.evaluate(runAll),
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error("run all timed out")), spec.run_timeout_s * 1000); }),
    ]).finally(() => clearTimeout(timer));
    await page.waitForFunction(kernelIdle, null, { timeout: 60000, polling: 500 });
    report.runSeconds = (Date.now() - runStart) / 1000;
    await page.screenshot({ path: path.join(lesson.screenshots, "after-run-all.png") });
    await tryWidgets(page, spec, lesson, report);
    report.cells = await page.evaluate(cellStates);
    report.kernelErrors = await page.evaluate(() => window.__live.kernelErrors);
    await page.evaluate(() => window.__live.panel.sessionContext.shutdown());
  } catch (err) {
    report.error = String(err && err.stack ? err.stack : err).slice(0, 2000);
    try { await page.screenshot({ path: path.join(lesson.screenshots, "failure.png") }); } catch (_) { /* closed */ }
  } finally {
    report.seconds = (Date.now() - start) / 1000;
    await context.close();
  }
  return report;
}

async function main() {
  const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  const browser = await chromium.launch({ executablePath: spec.chromium, headless: true, args: FLAGS });
  const reports = [];
  try {
    for (const lesson of spec.lessons) reports.push(await checkLesson(browser, spec, lesson));
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(reports, null, 1) + "\n");
}

main().catch((err) => { console.error(err && err.stack ? err.stack : err); process.exit(1); });
