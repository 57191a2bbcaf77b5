import { mkdirSync } from "node:fs";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterEach, describe, expect, it } from "vitest";
import { canaryToken, startHarness, type Harness } from "../support/harness.js";
import { startFakeGitHubOAuth, type FakeGitHubOAuth } from "../support/fake-github-oauth.js";

/**
 * The promise of the job page, in a real browser (Debian's Chromium, driven by playwright-core;
 * no browser is downloaded): sign in through GitHub (a fake on 127.0.0.1), watch a running job's
 * log arrive line by line, press Cancel and see the job end cancelled; someone who cannot read
 * the repository gets 404. Screenshots of each page go to test-results/.
 */
const SHOTS = path.resolve(import.meta.dirname, "../../test-results");
const CHROMIUM = "/usr/bin/chromium";
const CLIENT = { clientId: "Iv23liFakeClientId0001", clientSecret: "fake-client-secret-0123456789abcdef" };

let h: Harness | undefined;
let oauth: FakeGitHubOAuth | undefined;
let browser: Browser | undefined;
afterEach(async () => {
  await browser?.close();
  await h?.close();
  await oauth?.close();
  browser = h = oauth = undefined;
});

async function waitFor<T>(check: () => Promise<T | undefined | false>, what: string, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function signInAs(page: Page, login: string) {
  await page.locator(`#as-${login}`).click();
  await page.waitForURL((url) => url.pathname.startsWith("/jobs"));
}

describe("the job page in a browser", () => {
  it("signs in with GitHub, shows the log as the agent prints it, cancels the job, and hides it from someone who cannot read the repository", async () => {
    mkdirSync(SHOTS, { recursive: true });
    const canary = canaryToken("jwt");
    oauth = await startFakeGitHubOAuth({
      ...CLIENT,
      users: [
        { login: "maintainer", id: 1, name: "Mona Maintainer", permission: "write" },
        { login: "outsider", id: 2, permission: "none" },
      ],
    });
    h = await startHarness({ autoSchedule: true, permissions: { maintainer: "write" }, env: oauth.env() });
    await h.deliverLabel({ title: "Add a friendly greeting to the README", body: `FAKE_AGENT:chatty FAKE_AGENT_SAY:${canary}` });
    const harness = h;
    const job = await waitFor(async () => {
      const [j] = await harness.controller.store.list();
      return j?.state === "running" && (await harness.controller.logs.read(j.id)).length > 3 && j;
    }, "the job to run");
    const jobUrl = `${h.controller.url}/jobs/${job.id}`;

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    const desktop = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await desktop.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("console", (m) => m.type() === "error" && pageErrors.push(m.text()));

    // Not signed in: the page sends the browser to GitHub's authorize page.
    await page.goto(jobUrl);
    expect(new URL(page.url()).origin).toBe(oauth.url);
    await page.screenshot({ path: path.join(SHOTS, "web-1-sign-in.png") });
    await signInAs(page, "maintainer");
    expect(page.url()).toBe(jobUrl);
    await expect.poll(() => page.locator("#summary [data-state]").getAttribute("data-state")).toBe("running");
    await expect.poll(() => page.locator(".who b").textContent()).toBe("maintainer");

    // Lines arrive while the agent prints them, without a reload.
    const after = Number(await page.locator("#log").getAttribute("data-after"));
    await page.evaluate(() => ((window as unknown as { sameLoad: boolean }).sameLoad = true));
    await page.locator(`#L${after + 8}`).waitFor({ timeout: 10_000 });
    expect(await page.evaluate(() => (window as unknown as { sameLoad?: boolean }).sameLoad)).toBe(true);
    const ids = await page.locator("#log .line").evaluateAll((rows) => rows.map((r) => Number(r.id.slice(1))));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.filter((id) => id > after).length).toBeGreaterThanOrEqual(8);
    expect(await page.locator(`#L${after + 8} .text`).textContent()).toMatch(/fake agent: chatty line \d+|step /);
    expect(await page.locator("#live").textContent()).toBe("live");
    await page.screenshot({ path: path.join(SHOTS, "web-2-job-running.png") });

    // The same page on a phone: no sideways scrolling.
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
      storageState: await desktop.storageState(),
    });
    const phonePage = await phone.newPage();
    await phonePage.goto(jobUrl);
    await phonePage.locator(`#L${after + 12}`).waitFor({ timeout: 10_000 });
    expect(await phonePage.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await phonePage.screenshot({ path: path.join(SHOTS, "web-3-job-phone.png") });

    // The agent printed a token; the page shows it redacted, never the token.
    expect(await page.locator("#log").textContent()).toContain("I found [REDACTED] lying around");
    for (const p of [page, phonePage]) {
      const content = await p.content();
      expect(content).not.toContain(canary);
      expect(content).not.toContain(canary.split(".")[1]!);
      expect(content).not.toContain(h.workerToken);
    }
    await phone.close();

    // Cancel (after a confirmation), and the page follows the job to its end.
    page.once("dialog", (d) => void d.accept());
    await page.getByRole("button", { name: "Cancel job" }).click();
    await page.waitForURL(`${jobUrl}?cancel=sent`);
    // Stopping takes the worker's grace period (SIGTERM, then SIGKILL after 5 s) and the stream's
    // one-second poll; a loaded machine stretches both, so the wait is generous.
    const clicked = Date.now();
    await page
      .locator('#summary [data-state="cancelled"]')
      .waitFor({ timeout: 60_000 })
      .catch(async (err: Error) => {
        const state = (await harness.controller.store.get(job.id))?.state;
        const live = await page.locator("#live").textContent();
        throw new Error(
          `${err.message}\nthe job is ${state}, the page's stream is ${live}; requests: ${JSON.stringify(await harness.controller.requests.list())}`,
        );
      });
    console.info(`the page showed the job cancelled ${Date.now() - clicked} ms after Cancel`);
    await expect.poll(() => page.locator("#live").textContent(), { timeout: 5_000 }).toBe("ended");
    expect(await page.locator("#summary").textContent()).toContain("stopped by @maintainer");
    expect(await page.getByRole("button", { name: "Cancel job" }).count()).toBe(0);
    expect((await h.controller.store.get(job.id))!.state).toBe("cancelled");
    const [stop] = await h.controller.requests.list();
    expect(stop).toMatchObject({ source: "web", verb: "stop", sender: "maintainer" });
    await page.screenshot({ path: path.join(SHOTS, "web-4-job-cancelled.png"), fullPage: true });

    // The jobs list.
    await page.goto(`${h.controller.url}/jobs`);
    expect(await page.locator(`a[href="/jobs/${job.id}"]`).count()).toBe(1);
    await page.screenshot({ path: path.join(SHOTS, "web-5-jobs.png"), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await page.screenshot({ path: path.join(SHOTS, "web-6-jobs-phone.png"), fullPage: true });
    expect(pageErrors).toEqual([]);

    // Someone without read access: 404, as for a job that does not exist.
    const other = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    await other.goto(jobUrl);
    await signInAs(other, "outsider");
    const res = await other.goto(jobUrl);
    expect(res!.status()).toBe(404);
    expect(await other.content()).not.toContain(job.title);
    expect(await other.locator("h1").textContent()).toBe("Job not found");
    await other.screenshot({ path: path.join(SHOTS, "web-7-job-404.png") });
  }, 90_000);
});
