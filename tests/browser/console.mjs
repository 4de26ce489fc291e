// Drives the console as a person would, in headless chromium: fills the data-source form against
// a real influxd, runs the connectivity check with a wrong password (sees the failure) and the
// right one (sees both ends reachable and the measurements listed), adds the task and waits
// until its page says complete with every row, its charts drawn, and Verify says equal. An
// unreachable TDengine is shown in plain words at the DSN field; the target emptied, Verify lists
// the windows that differ and Repair mends them. A second task keeps syncing:
// its charts move while it runs (live over server-sent events), and the screenshot shows it.
// Environment: CONSOLE_URL, INFLUX_PORT, INFLUX_PASSWORD, TARGET_DIR, BEGIN, END, ROWS,
// LIVE_BEGIN, LIVE_ROWS, CLOSED_PORT, SCREENSHOT, CHROMIUM (the browser binary).
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const fail = (message) => { console.error(message); process.exit(1); };

const browser = await chromium.launch({ executablePath: env("CHROMIUM"), args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("pageerror", (error) => fail(`page error: ${error}`));
  await page.goto(env("CONSOLE_URL"));

  await page.fill('input[name="job"]', "browser-task");
  await page.selectOption('select[name="version"]', "1");
  await page.selectOption('select[name="protocol"]', "http");
  await page.fill('input[name="host"]', "127.0.0.1");
  await page.fill('input[name="port"]', env("INFLUX_PORT"));
  await page.fill('input[name="username"]', "copier");
  await page.fill('input[name="bucket"]', "no-such-bucket");
  await page.fill('input[name="dsn"]', `file://${env("TARGET_DIR")}`);
  await page.fill('input[name="database"]', "metrics");
  // datetime-local takes the UTC time without its zone.
  await page.fill('input[name="begin"]', env("BEGIN"));
  await page.fill('input[name="end"]', env("END"));
  await page.fill('input[name="window"]', "1");

  // A wrong password: the check says InfluxDB failed, and why.
  await page.fill('input[name="password"]', "wrong-password");
  await page.click("#check");
  await page.waitForSelector('#checked[data-passed="false"]', { timeout: 20000 });
  const failure = await page.textContent("#checked");
  if (!/InfluxDB: failed/i.test(failure) || !/auth/i.test(failure)) fail(`wrong password not shown: ${failure}`);

  // The right password but a bucket that is not there: the check says so, and lists the
  // buckets there are to pick from.
  await page.fill('input[name="password"]', env("INFLUX_PASSWORD"));
  await page.click("#check");
  await page.waitForSelector('#checked[data-passed="false"]', { timeout: 20000 });
  const missing = await page.textContent("#checked");
  if (!/no-such-bucket/.test(missing)) fail(`missing bucket not shown: ${missing}`);
  await page.waitForSelector('#buckets[data-count="1"]', { state: "attached", timeout: 20000 });
  const buckets = await page.$$eval("#buckets option", (all) => all.map((o) => o.value));
  if (buckets.join(",") !== "db") fail(`buckets listed: ${buckets}`);
  await page.fill('input[name="bucket"]', buckets[0]);

  // A TDengine nothing answers for: the plain message, with what to check, at the DSN field.
  await page.fill('input[name="dsn"]', `ws://127.0.0.1:${env("CLOSED_PORT")}`);
  await page.click("#check");
  await page.waitForSelector('input[name="dsn"].invalid', { timeout: 20000 });
  const unreachable = await page.$eval('input[name="dsn"]', (input) => input.closest("label").querySelector(".problem").textContent);
  const plain = `cannot connect to TDengine at ws://127.0.0.1:${env("CLOSED_PORT")}: connection refused — is taosAdapter running there?`;
  if (!unreachable.startsWith(plain) || /ws-tool|os error/.test(unreachable)) fail(`unreachable TDengine shown as: ${unreachable}`);
  await page.fill('input[name="dsn"]', `file://${env("TARGET_DIR")}`);

  // Now both ends are reachable and the measurements are listed to pick from.
  await page.click("#check");
  await page.waitForSelector('#checked[data-passed="true"]', { timeout: 20000 });
  await page.waitForFunction(() => document.querySelectorAll("#measurements option").length === 3, null, { timeout: 20000 });
  const options = await page.$$eval("#measurements option", (all) => all.map((o) => o.value));
  if (options.join(",") !== [env("HOSTILE"), "cpu", "mem"].join(",")) fail(`measurements listed: ${options}`);
  await page.click("#all");

  // A bad value is shown next to its field.
  await page.fill('input[name="batch_size"]', "0");
  await page.fill('input[name="agent"]', "http://not-nats:4222");
  await page.click("#add");
  await page.waitForSelector('input[name="batch_size"].invalid', { timeout: 10000 });
  await page.waitForSelector('input[name="agent"].invalid', { timeout: 10000 });
  await page.fill('input[name="batch_size"]', "5000");
  await page.fill('input[name="agent"]', "");

  await page.click("#add");
  const rows = env("ROWS");
  await page.waitForFunction(
    (rows) => {
      const job = document.querySelector('.job[data-job="browser-task"]');
      return job && job.querySelector(".state").textContent.includes("complete")
        && job.querySelector(".rows").textContent === rows;
    },
    rows,
    { timeout: 60000 },
  );
  const bars = await page.$$eval('.job[data-job="browser-task"] .bar > div', (all) => all.map((b) => b.style.width));
  if (bars.length !== 3 || bars.some((width) => width !== "100%")) fail(`progress bars: ${bars}`);
  // The measurement named like markup is shown as its text, and its script never ran.
  const names = await page.$$eval('.job[data-job="browser-task"] td:first-child', (all) => all.map((td) => td.textContent));
  if (!names.includes(env("HOSTILE"))) fail(`measurement names shown: ${names}`);
  if (await page.evaluate(() => window.hacked)) fail("a measurement name ran as script");
  // The task shows its settings; of the password only that it is set.
  const tasks = await page.$eval("#jobs", (list) => list.innerText);
  if (!tasks.includes("user copier, password set") || tasks.includes(env("INFLUX_PASSWORD"))) fail(`task settings: ${tasks}`);
  // Its charts: drawn from its history, the rows line ending at every row written and read.
  const finished = '.job[data-job="browser-task"]';
  const legend = await page.$eval(`${finished} [data-chart="rows"] .title`, (title) => title.textContent);
  if (!legend.includes(`read ${rows}`) || !legend.includes(`written ${rows}`)) fail(`rows chart: ${legend}`);
  for (const name of ["rows_per_second", "rows", "windows_in_flight", "retries", "dead_lettered"]) {
    const points = await page.$eval(`${finished} [data-chart="${name}"] svg`, (svg) => Number(svg.dataset.points));
    if (!(points >= 1)) fail(`chart ${name} has ${points} points`);
  }
  // Updates come live, over the console's server-sent events.
  await page.waitForSelector('#live[data-mode="live"]', { timeout: 10000 });
  // Verify from the page: the finished task's target equals its source.
  await page.click(`${finished} [data-act="verify"]`);
  await page.waitForFunction(
    () => document.querySelector('.job[data-job="browser-task"] .verified').textContent.includes("equals the source (3 measurements)"),
    null,
    { timeout: 30000 },
  );
  if (await page.$(`${finished} .differences`)) fail("differences shown for an equal target");
  // The target loses its rows: Verify lists the windows that differ, Repair reads them again.
  for (const file of readdirSync(env("TARGET_DIR"))) rmSync(join(env("TARGET_DIR"), file), { recursive: true });
  await page.click(`${finished} [data-act="verify"]`);
  await page.waitForSelector(`${finished} .differences`, { timeout: 30000 });
  const differing = await page.$$eval(`${finished} .differences tr`, (all) => all.length - 1);
  if (differing < 3) fail(`windows listed as different: ${differing}`);
  await page.click(`${finished} [data-act="repair"]`);
  await page.waitForFunction(
    (task) => /^repaired \d+ windows .*verify: the target equals the source \(3 measurements\)$/.test(document.querySelector(`${task} .verified`).textContent),
    finished,
    { timeout: 30000 },
  );
  if (await page.$(`${finished} .differences`)) fail("differences still shown after the repair");

  // A task without end keeps syncing: while it runs its charts move, second by second.
  await page.fill('input[name="job"]', "browser-live");
  await page.fill('input[name="dsn"]', `file://${env("TARGET_DIR")}-live`);
  await page.fill('input[name="begin"]', env("LIVE_BEGIN"));
  await page.fill('input[name="end"]', "");
  await page.click("#add");
  const live = '.job[data-job="browser-live"]';
  const pointsOf = (task) => Number(document.querySelector(`${task} [data-chart="rows_per_second"] svg`)?.dataset.points || 0);
  await page.waitForFunction(
    ([task, rows]) => document.querySelector(`${task} .rows`)?.textContent === rows,
    [live, env("LIVE_ROWS")],
    { timeout: 30000 },
  );
  // At least three points, and two more than when the rows had all arrived.
  const before = Math.max(1, await page.evaluate(pointsOf, live));
  await page.waitForFunction(([task, before]) => {
    const svg = document.querySelector(`${task} [data-chart="rows_per_second"] svg`);
    return svg && Number(svg.dataset.points) >= before + 2;
  }, [live, before], { timeout: 15000 });
  const lag = await page.$eval(`${live} [data-chart="lag"]`, (chart) => ({ title: chart.textContent, points: Number(chart.querySelector("svg").dataset.points) }));
  if (!(lag.points >= 3) || !/lag behind now/.test(lag.title)) fail(`lag chart: ${JSON.stringify(lag)}`);
  const liveLegend = await page.$eval(`${live} [data-chart="rows"] .title`, (title) => title.textContent);
  if (!liveLegend.includes(`written ${env("LIVE_ROWS")}`)) fail(`live rows chart: ${liveLegend}`);
  const sparks = await page.$$eval(`${live} svg[data-spark="rows_per_second"]`, (all) => all.length);
  if (sparks < 1) fail("no chart per measurement");
  if (!(await page.$eval(`${live} .state`, (state) => state.textContent)).startsWith("running")) fail("the live task is not running");
  await page.$eval(live, (task) => task.scrollIntoView());
  await page.screenshot({ path: env("SCREENSHOT"), fullPage: true });
  await page.click(`${live} [data-act="stop"]`);
  await page.waitForFunction((task) => document.querySelector(`${task} .state`).textContent.startsWith("stopped"), live, { timeout: 10000 });

  // Stop ends the task for good: it stays listed as stopped, and resuming it is refused with
  // the reason shown next to its buttons.
  const task = '.job[data-job="browser-task"]';
  await page.click(`${task} [data-act="stop"]`);
  await page.waitForFunction((task) => document.querySelector(`${task} .state`).textContent.startsWith("stopped"), task, { timeout: 10000 });
  if (!(await page.$eval(`${task} [data-act="resume"]`, (b) => b.disabled))) fail("resume offered for a stopped task");
  await page.$eval(`${task} [data-act="resume"]`, (b) => { b.disabled = false; b.click(); });
  await page.waitForFunction((task) => document.querySelector(`${task} p .problem`).textContent.includes("stopped for good"), task, { timeout: 10000 });
  // Delete asks first.
  page.once("dialog", (dialog) => dialog.accept());
  await page.click(`${task} [data-act="delete"]`);
  await page.waitForFunction((task) => !document.querySelector(task), task, { timeout: 10000 });
  console.log("ok");
} finally {
  await browser.close();
}
