// Drives tinyemo's web page in headless Chromium (tests/server/server_page_test.cpp runs it):
//   node page_test.cjs NPM_DIR CHROMIUM URL IMAGE NOT_IMAGE EXPECTED_LABEL [--reason] [--screenshot=FILE.png]
// Uploads IMAGE, waits for the bars and checks the label shown is EXPECTED_LABEL
// (the API's answer) and, with --reason (a server with a reasoning model), that
// the explanation streams in; uploads NOT_IMAGE and checks the page shows an
// error; checks the drop zone is reached by keyboard, a label subset is
// applied, and nothing overflows at a phone's width. Prints one JSON line;
// exits 1 on a failed check.
'use strict';

const [npmDir, chromium, url, image, notImage, expected, ...flags] = process.argv.slice(2);
const reason = flags.includes('--reason');
const shot = flags.find((f) => f.startsWith('--screenshot='));
const screenshot = shot ? shot.slice('--screenshot='.length) : '';
const puppeteer = require(require.resolve('puppeteer-core', { paths: [npmDir] }));

const checks = [];
function check(name, ok, detail) {
  checks.push({ name, ok: !!ok, detail });
}

async function main() {
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  const timeout = 30000;
  try {
    const page = await browser.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.setViewport({ width: 900, height: 760 });
    await page.goto(url, { waitUntil: 'load', timeout });
    await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('Ready'), { timeout });

    // Keyboard: the first Tab reaches the drop zone.
    await page.keyboard.press('Tab');
    check('drop zone is the first tab stop', await page.evaluate(() => document.activeElement.id === 'drop'));

    // An image: bars, and the API's label.
    const input = await page.$('#files');
    await input.uploadFile(image);
    await page.waitForSelector('.result:not(.pending) .bar', { timeout });
    const shown = await page.$eval('.result .top-label', (e) => e.textContent);
    const bars = await page.$$eval('.result .bar', (e) => e.length);
    check('label shown equals the API', shown === expected, { shown, expected });
    check('one bar per label', bars === 3, { bars });
    const latency = await page.$eval('.result .latency', (e) => e.textContent);
    check('latency shown', /^\d+ ms$/.test(latency), { latency });
    if (reason) {
      await page.waitForFunction(() => {
        const e = document.querySelector('.result .explanation');
        return e && !e.hidden && e.textContent.length > 0;
      }, { timeout });
      const explanation = await page.$eval('.result .explanation', (e) => e.textContent);
      check('explanation streams in', explanation.length > 0, { explanation });
      const status = await page.$eval('#status', (e) => e.textContent);
      check('status names the reasoning model', status.includes('reasoning'), { status });
    }

    // A file that is not an image: its card says why.
    await input.uploadFile(notImage);
    await page.waitForSelector('.result.failed .error:not([hidden])', { timeout });
    const error = await page.$eval('.result.failed .error', (e) => e.textContent);
    check('non-image shows an error', error.length > 0, { error });
    if (screenshot) await page.screenshot({ path: screenshot });

    // The label set edited: the image is classified again over two labels.
    await page.$eval('#labels', (e) => { e.value = 'fear, anger'; });
    await page.focus('#labels');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => {
      const cards = Array.from(document.querySelectorAll('.result:not(.failed):not(.pending)'));
      return cards.length > 0 && cards.every((c) => c.querySelectorAll('.bar').length === 2);
    }, { timeout });
    const relabelled = await page.$eval('.result:not(.failed) .top-label', (e) => e.textContent);
    check('label subset applied', relabelled === 'fear' || relabelled === 'anger', { relabelled });

    // A phone's width: nothing wider than the screen.
    await page.setViewport({ width: 360, height: 740 });
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    check('fits a phone width', width <= 360, { width });
    check('no script errors', pageErrors.length === 0, { pageErrors });
  } finally {
    await browser.close();
  }
}

main()
  .catch((e) => check('ran', false, String(e && e.stack || e)))
  .finally(() => {
    const failed = checks.filter((c) => !c.ok);
    console.log(JSON.stringify({ checks, failed: failed.length }));
    process.exit(failed.length === 0 && checks.length > 0 ? 0 : 1);
  });
