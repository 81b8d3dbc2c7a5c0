#!/usr/bin/env node
// Opens built decks in headless Chromium (Debian's, through playwright-core, which downloads no
// browser), checks what a person would see, prints PDFs and takes screenshots.
//
//     node tools/slides_browser.cjs spec.json
//
// spec.json: {"chromium": "/usr/bin/chromium", "width": 1280, "height": 720,
//             "decks": [{"name": "01_minimax", "html": "/abs/01_minimax.html",
//                        "pdf": "/abs/01_minimax.pdf" | null, "screenshots": "/abs/dir" | null}]}
// Prints one JSON report per deck (a list) on stdout; tools/slides.py reads and judges it.
"use strict";

const fs = require("fs");
const path = require("path");
const { pathToFileURL } = require("url");
const { chromium } = require("playwright-core");

// The flags Debian's Chromium needs to start headless here without stalling on the network.
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const READY_TIMEOUT_MS = 60000;

// Everything is measured inside the page, on the laid-out deck.
function inspectDeck(height) {
  const slides = document.querySelector(".reveal .slides");
  const leaves = Array.from(slides.querySelectorAll("section")).filter((s) => !s.querySelector("section"));
  const images = Array.from(slides.querySelectorAll("img"));
  const rawTex = [];
  const walker = document.createTreeWalker(slides, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const inCode = node.parentElement.closest("pre, code, script, style, mjx-container");
    if (!inCode && /\$|\\\(|\\\[|\\begin\{|\\frac/.test(node.textContent)) rawTex.push(node.textContent.trim().slice(0, 80));
  }
  const overflowing = [];
  leaves.forEach((section, i) => {
    const { h, v } = Reveal.getIndices(section);
    Reveal.slide(h, v);
    if (section.scrollHeight > height + 2) overflowing.push({ slide: i + 1, height: section.scrollHeight });
  });
  Reveal.slide(0, 0);
  return {
    title: document.title,
    totalSlides: Reveal.getTotalSlides(),
    sections: leaves.length,
    math: slides.querySelectorAll("mjx-container").length,
    mathErrors: slides.querySelectorAll('mjx-merror, [data-mml-node="merror"]').length,
    rawTex,
    images: images.length,
    brokenImages: images.filter((img) => !(img.complete && img.naturalWidth > 0)).map((img) => img.src.slice(0, 60)),
    firstFigureSlide: leaves.findIndex((s) => s.querySelector("img")),
    notes: slides.querySelectorAll("aside.notes").length,
    overflowing,
  };
}

async function openDeck(context, url, log) {
  const page = await context.newPage();
  page.on("console", (msg) => { if (msg.type() === "error") log.consoleErrors.push(msg.text()); });
  page.on("pageerror", (err) => log.pageErrors.push(String(err)));
  page.on("requestfailed", (req) => log.failedRequests.push(req.url().slice(0, 120)));
  await page.route("**/*", (route) => {  // a deck must need nothing from the network
    const u = route.request().url();
    if (/^(file|data|blob|about):/.test(u)) return route.continue();
    log.externalRequests.push(u.slice(0, 120));
    return route.abort();
  });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(() => window.courseDeck && window.courseDeck.ready, null, { timeout: READY_TIMEOUT_MS });
  return page;
}

async function checkDeck(browser, spec, deck) {
  const log = { consoleErrors: [], pageErrors: [], failedRequests: [], externalRequests: [] };
  const report = { name: deck.name, html: deck.html, screenshots: [], pdf: null, ...log };
  const context = await browser.newContext({ viewport: { width: spec.width, height: spec.height } });
  try {
    const url = pathToFileURL(deck.html).href;
    const page = await openDeck(context, url, log);
    Object.assign(report, await page.evaluate(inspectDeck, spec.height));
    if (deck.screenshots) {
      fs.mkdirSync(deck.screenshots, { recursive: true });
      await page.evaluate(() => Reveal.configure({ transition: "none" }));
      const shots = [["title", 0], ["figure", report.firstFigureSlide]];
      for (const [kind, index] of shots) {
        if (index < 0) continue;
        await page.evaluate((i) => Reveal.slide(i, 0), index);
        await page.waitForTimeout(200);  // let the slide settle (no transition; a frame or two)
        const file = path.join(deck.screenshots, `${deck.name}-${kind}.png`);
        await page.screenshot({ path: file });
        report.screenshots.push({ kind, slide: index + 1, file });
      }
    }
    await page.close();
    if (deck.pdf) {  // reveal.js lays the deck out for print with ?print-pdf: one page per slide
      const printPage = await openDeck(context, url + "?print-pdf", log);
      await printPage.pdf({ path: deck.pdf, preferCSSPageSize: true, printBackground: true });
      report.pdf = deck.pdf;
      await printPage.close();
    }
  } catch (err) {
    report.error = String(err && err.stack ? err.stack : err);
  } finally {
    await context.close();
    Object.assign(report, log);
  }
  return report;
}

async function main() {
  const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  const browser = await chromium.launch({ executablePath: spec.chromium, headless: true, args: FLAGS });
  const reports = [];
  try {
    for (const deck of spec.decks) reports.push(await checkDeck(browser, spec, deck));
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(reports, null, 1) + "\n");
}

main().catch((err) => { console.error(err && err.stack ? err.stack : err); process.exit(1); });
