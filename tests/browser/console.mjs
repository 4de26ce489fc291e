// Drives the console as a person would, in headless chromium: fills the data-source form against
// a real influxd, runs the connectivity check with a wrong password (sees the failure) and the
// right one (sees both ends reachable and the measurements listed), adds the task and waits
// until its page says complete with every row. Saves a screenshot of the task page.
// Environment: CONSOLE_URL, INFLUX_PORT, INFLUX_PASSWORD, TARGET_DIR, BEGIN, END, ROWS,
// SCREENSHOT, CHROMIUM (the browser binary).
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
  // Verify from the page: the finished task's target equals its source.
  await page.click('.job[data-job="browser-task"] [data-act="verify"]');
  await page.waitForFunction(
    () => document.querySelector('.job[data-job="browser-task"] .verified').textContent.includes("equals the source (3 measurements)"),
    null,
    { timeout: 30000 },
  );
  await page.screenshot({ path: env("SCREENSHOT"), fullPage: true });

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
