// Drives Debian's Chromium through the console of a running Grove, as a person would,
// and fails (exit 1) on the first thing that is not as expected. Started by
// crates/grove/tests/console.rs with the scenario as JSON in GROVE_CONSOLE_SCENARIO.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const s = JSON.parse(process.env.GROVE_CONSOLE_SCENARIO);
mkdirSync(s.screenshots, { recursive: true });
const LONG = 120_000;

const browser = await chromium.launch({
  executablePath: process.env.GROVE_CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

const step = (what) => console.log(`console test: ${what}`);

async function context(extra = {}) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: !!s.https, viewport: { width: 1280, height: 860 }, ...extra });
  ctx.setDefaultTimeout(30_000);
  return ctx;
}

// Every page of a test: no script may run from what users wrote, no console error.
function watch(page) {
  page.on("dialog", (dialog) => { throw new Error(`a dialog opened: ${dialog.message()}`); });
  page.on("pageerror", (error) => { throw new Error(`a script error: ${error.message}`); });
}

async function shot(page, name) {
  await page.screenshot({ path: `${s.screenshots}/${name}.png`, fullPage: true });
}

async function signIn(page, token) {
  await page.goto(`${s.url}/services`);
  assert.match(page.url(), /\/login\?next=/, "signed out: the sign-in page");
  await page.fill("input[name=token]", token);
  await page.click("button[type=submit]");
  await page.waitForURL(/\/services$/);
}

// The page is not reloaded while we wait: a mark set on its window stays.
async function markPage(page) {
  await page.evaluate(() => { window.__groveMark = "same page"; });
}
async function assertSamePage(page) {
  assert.equal(await page.evaluate(() => window.__groveMark), "same page", "the page was not reloaded");
}

async function waitForText(page, selector, text) {
  await page.waitForFunction(
    ([sel, want]) => document.querySelector(sel)?.textContent.trim() === want,
    [selector, text],
    { timeout: LONG, polling: 200 },
  );
}

async function upScenario() {
  const admin = await context();
  const page = await admin.newPage();
  watch(page);

  step("a wrong token is refused");
  await page.goto(`${s.url}/services`);
  await page.fill("input[name=token]", "g1.u.1.not-the-secret");
  await page.click("button[type=submit]");
  assert.match(await page.textContent("p.error"), /invalid token/);
  await shot(page, "login");

  step("sign in and request the hello example");
  await signIn(page, s.admin_token);
  const answer = await page.goto(`${s.url}/services`);
  const csp = answer.headers()["content-security-policy"] || "";
  assert.match(csp, /script-src 'self'/, "a Content-Security-Policy");
  assert.doesNotMatch(csp, /unsafe-inline/);
  const cookie = (await admin.cookies()).find((c) => c.name === "grove_session");
  assert.ok(cookie?.httpOnly, "the session cookie is HttpOnly");
  assert.equal(cookie.sameSite, "Strict");
  await page.click("text=Request a service");
  const title = `web <script>window.__pwned = 1</script>`;
  await page.fill("input[name=title]", title);
  await page.fill("input[name=software_release]", s.hello_release);
  await page.fill("input[name=param_key]", "name");
  await page.fill("input[name=param_value]", "<b>Ada</b>");
  await shot(page, "request");
  await page.click("form.request button[type=submit]");
  await page.waitForURL(/\/services\/\d+$/);
  assert.equal((await page.textContent("h1#title")).trim(), title, "the title is text, not markup");
  assert.match(await page.textContent("#parameters"), /<b>Ada<\/b>/, "parameters are text");

  step("watch it reach started without reloading");
  await markPage(page);
  await waitForText(page, "#reported-state", "started");
  await page.waitForSelector("button.copy", { timeout: LONG });
  await assertSamePage(page);
  assert.equal(await page.evaluate(() => window.__pwned), undefined, "no script of the user's ran");
  await shot(page, "service");

  step("open its URL");
  const url = await page.getAttribute("button.copy", "data-copy");
  assert.match(url, /^http:\/\//);
  const site = await admin.newPage();
  await site.goto(url);
  assert.match(await site.textContent("body"), /Hello/);
  await site.close();

  step("the end of its logs");
  await page.click("#fetch-logs");
  await page.waitForURL(/\/services\/\d+#logs$/);
  await page.waitForFunction(() => document.querySelector("#logs pre.log")?.textContent.includes("GET /"), null, { timeout: LONG });
  assert.match(await page.textContent("#logs"), /hello listening on/);

  step("stop it and see it stopped");
  await page.click("button:has-text('Stop')");
  await page.waitForURL(/\/services\/\d+$/);
  assert.equal((await page.textContent("#requested-state")).trim(), "stopped");
  await markPage(page);
  await waitForText(page, "#reported-state", "stopped");
  await assertSamePage(page);

  step("the list, filtered");
  await page.goto(`${s.url}/services?q=__pwned`);
  assert.equal(await page.locator("table.list tbody tr[data-id]").count(), 1);
  await page.goto(`${s.url}/services`);
  await shot(page, "services");

  step("a broken release's error");
  await page.goto(`${s.url}/services/${s.broken_instance}`);
  await page.waitForSelector("#error-text", { timeout: LONG });
  assert.match(await page.textContent("#error-text"), new RegExp(s.broken_error));
  await page.goto(`${s.url}/computers/${s.computer}`);
  assert.match(await page.textContent("#software"), new RegExp(s.broken_error));
  await shot(page, "computer");
  await page.goto(`${s.url}/computers`);
  assert.equal(await page.locator(`a[href="/computers/${s.computer}"]`).count(), 1);
  await shot(page, "computers");

  step("usage over time as a chart");
  await page.goto(`${s.url}/services/${s.team_instance}`);
  await page.waitForSelector("#usage svg.chart", { timeout: LONG });

  step("projects and billing");
  await page.goto(`${s.url}/projects/${s.project}`);
  assert.match(await page.textContent("#quotas"), /instances/);
  await shot(page, "project");
  if (s.invoice_month) {
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.click(`a[href$="month=${s.invoice_month}"]`),
    ]);
    const path = `${s.screenshots}/invoice.csv`;
    await download.saveAs(path);
  }

  step("the profile editor");
  await page.goto(`${s.url}/profiles`);
  await page.waitForSelector("#diagnostics li.ok");
  await page.fill("#profile", "[buildout]\nparts = a\n\n[a]\nrecipe = r\nx = ${nowhere:y}\n");
  await page.waitForSelector("#diagnostics li.error");
  assert.match(await page.textContent("#diagnostics"), /nowhere/);
  await page.fill("#profile", "[buildout]\nparts = a\n\n[a]\nrecipe = r\nx = ${:y}!\ny = resolved\n");
  await page.waitForFunction(() => document.querySelector("#resolved")?.textContent.includes("resolved!"));
  await shot(page, "profiles");

  step("a Roboconf application as a diagram");
  await page.goto(`${s.url}/apps`);
  assert.equal(await page.locator(`a[href="/apps/${s.roboconf_app}"]`).count(), 1);
  await page.goto(`${s.url}/apps/${s.roboconf_app}`);
  assert.equal(await page.locator("svg.diagram g.node").count(), 4, "vm-db, db, vm-web, web");
  assert.equal(await page.locator("svg.diagram g.node.started").count(), 4);
  assert.match(await page.textContent("svg.diagram"), /\/vm-web\/web imports Database from \/vm-db\/db/);
  await shot(page, "app-roboconf");

  step("a ConPaaS application: add a node, then remove one");
  await page.goto(`${s.url}/apps/${s.conpaas_app}`);
  const nodes = "tr[data-role=node] td.count";
  assert.equal((await page.textContent(nodes)).trim(), "1");
  await page.click("tr[data-role=node] button[value=add]");
  await page.waitForURL(new RegExp(`/apps/${s.conpaas_app}$`));
  await markPage(page);
  await waitForText(page, nodes, "2");
  await assertSamePage(page);
  await shot(page, "app-conpaas");
  await page.click("tr[data-role=node] button[value=remove]");
  await page.waitForURL(new RegExp(`/apps/${s.conpaas_app}$`));
  await markPage(page);
  await waitForText(page, nodes, "1");
  await assertSamePage(page);

  step("a reader sees no buttons and a forged form is refused");
  const reader = await context();
  const rpage = await reader.newPage();
  watch(rpage);
  await signIn(rpage, s.reader_token);
  await rpage.goto(`${s.url}/services/${s.team_instance}`);
  assert.equal((await rpage.textContent("#requested-state")).trim(), "started");
  assert.equal(await rpage.locator("form[action$='/state']").count(), 0, "no state buttons for a reader");
  assert.equal(await rpage.locator("#fetch-logs").count(), 0, "a reader runs no action");
  const forged = await rpage.evaluate(async ([id]) => {
    const body = new URLSearchParams({ _csrf: document.body.dataset.csrf, state: "stopped" });
    const answer = await fetch(`/services/${id}/state`, { method: "POST", body });
    return { status: answer.status, text: await answer.text() };
  }, [s.team_instance]);
  assert.equal(forged.status, 403, forged.text);
  const noToken = await rpage.evaluate(async ([id]) => {
    const answer = await fetch(`/services/${id}/state`, { method: "POST", body: new URLSearchParams({ state: "stopped" }) });
    return answer.status;
  }, [s.team_instance]);
  assert.equal(noToken, 403, "a form without the session's CSRF token");
  await rpage.reload();
  assert.equal((await rpage.textContent("#requested-state")).trim(), "started", "nothing changed");
  await reader.close();

  // The README's picture: the services of this run that are meant to be started.
  await page.goto(`${s.url}/services?state=started`);
  await shot(page, "readme");

  step("sign out");
  await page.click("text=Sign out");
  await page.waitForURL(/\/login/);
  await page.goto(`${s.url}/services`);
  assert.match(page.url(), /\/login/);
  await admin.close();
}

async function masterScenario() {
  const options = s.certificate
    ? { clientCertificates: [{ origin: s.url, certPath: s.certificate, keyPath: s.key }] }
    : {};
  const ctx = await context(options);
  const page = await ctx.newPage();
  watch(page);
  step("sign in with a client certificate over HTTPS");
  await page.goto(`${s.url}/services`);
  await page.click("text=Sign in with my client certificate");
  await page.waitForURL(/\/services$/);
  const cookie = (await ctx.cookies()).find((c) => c.name === "grove_session");
  assert.ok(cookie?.secure && cookie.httpOnly, "a Secure, HttpOnly cookie under TLS");

  step("request hello on the node and watch it start");
  await page.goto(`${s.url}/services/new`);
  await page.fill("input[name=title]", "hello-on-node");
  await page.fill("input[name=software_release]", s.hello_release);
  await page.click("form.request button[type=submit]");
  await page.waitForURL(/\/services\/\d+$/);
  await markPage(page);
  await waitForText(page, "#reported-state", "started");
  await assertSamePage(page);
  assert.match(await page.textContent("#state"), new RegExp(s.computer));
  await shot(page, "master-service");
  // Alice owns no computer: the admin's, which runs her service, is not hers to see.
  await page.goto(`${s.url}/computers`);
  assert.equal(await page.locator(`a[href="/computers/${s.computer}"]`).count(), 0);
  await page.goto(`${s.url}/computers/${s.computer}`);
  assert.match(await page.textContent("p.error"), /not yours/);
  await ctx.close();
}

try {
  if (s.kind === "up") await upScenario();
  else await masterScenario();
  step("done");
} finally {
  await browser.close();
}
