// notebook.mjs: drive Notebook 6.4's own page in headless Chromium through a --gateway-url notebook server.
//
// usage: node notebook.mjs NOTEBOOK_URL NOTEBOOK_TOKEN NOTEBOOK_PATH GATEWAY_URL GATEWAY_TOKEN SCREENSHOT
//
// One JSON object a line on stdout, one per step ({"step", ...}), then
// {"done": true}; the pytest judges them. Cells are run through the page's
// own code-cell objects (what the Run button calls), output read back from
// the rendered DOM. Every wait is bounded; the browser is closed on every
// path. The step "hibernate" polls the gateway (not the notebook server)
// until cellblock says the session is hibernated, with the page still open.
import { chromium } from 'playwright-core';

const [nbUrl, nbToken, nbPath, gwUrl, gwToken, shot] = process.argv.slice(2);
const WAIT = 60000;
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
	'--disable-component-update', '--disable-sync', '--no-first-run'];

async function idle(page) {
	await page.waitForSelector('#kernel_indicator_icon.kernel_idle_icon', { timeout: WAIT });
}

// Run code in a new cell at the bottom; wait for its execution count (the
// reply came) and return what the DOM shows for it.
async function run(page, code, { wait = true } = {}) {
	const index = await page.evaluate((code) => {
		const nb = window.Jupyter.notebook;
		const cell = nb.insert_cell_at_bottom('code');
		cell.set_text(code);
		nb.select(nb.find_cell_index(cell));
		cell.execute();
		return nb.find_cell_index(cell);
	}, code);
	if (!wait)
		return { index };
	await page.waitForFunction((i) => {
		const c = window.Jupyter.notebook.get_cell(i);
		return c.input_prompt_number !== '*' && c.input_prompt_number !== undefined &&
		    c.input_prompt_number !== null;
	}, index, { timeout: WAIT, polling: 100 });
	return read(page, index);
}

async function read(page, index) {
	return page.evaluate((i) => {
		const c = window.Jupyter.notebook.get_cell(i);
		const el = c.element[0];
		const img = el.querySelector('.output_png img');
		return {
			index: i,
			prompt: c.input_prompt_number,
			text: [...el.querySelectorAll('.output_subarea')].map((e) => e.innerText).join(''),
			tables: el.querySelectorAll('.output_html table.dataframe').length,
			cells: [...el.querySelectorAll('.output_html table.dataframe td')].map((e) => e.innerText),
			png: img ? { src: img.src.slice(0, 22), width: img.naturalWidth } : null,
			types: c.output_area.outputs.map((o) => o.output_type),
			ename: c.output_area.outputs.filter((o) => o.ename).map((o) => o.ename),
		};
	}, index);
}

async function gatewayModel(id) {
	const r = await fetch(`${gwUrl}/api/kernels/${id}`, {
		headers: { Authorization: 'token ' + gwToken } });
	return r.ok ? r.json() : { status: r.status };
}

async function main(page) {
	await page.goto(`${nbUrl}/notebooks/${nbPath}?token=${nbToken}`, { timeout: WAIT });
	await page.waitForFunction(() => window.Jupyter && window.Jupyter.notebook &&
	    window.Jupyter.notebook.kernel && window.Jupyter.notebook.kernel.is_connected(),
	null, { timeout: WAIT, polling: 100 });
	await idle(page);
	const kid = await page.evaluate(() => window.Jupyter.notebook.kernel.id);
	emit({ step: 'open', kernel: kid });

	emit({ step: 'print', ...(await run(page, "print('hello from cellblock', 6 * 7)")) });
	emit({ step: 'dataframe', ...(await run(page,
		"import pandas as pd\ndf = pd.DataFrame({'n': [1, 2, 3], 'sq': [1, 4, 9]})\ndf")) });
	emit({ step: 'png', ...(await run(page,
		"%matplotlib inline\nimport matplotlib.pyplot as plt\n" +
		"plt.plot([1, 2, 3], [3, 1, 2]); plt.show()")) });

	// A long cell, interrupted from the toolbar button while it runs.
	const long = await run(page, "import time\nfor i in range(600):\n    time.sleep(0.1)\n",
		{ wait: false });
	await page.waitForSelector('#kernel_indicator_icon.kernel_busy_icon', { timeout: WAIT });
	await page.waitForTimeout(500);
	await page.click('button[data-jupyter-action="jupyter-notebook:interrupt-kernel"]',
		{ timeout: WAIT });
	await page.waitForFunction((i) => window.Jupyter.notebook.get_cell(i).input_prompt_number !== '*',
		long.index, { timeout: WAIT, polling: 100 });
	await idle(page);
	emit({ step: 'interrupt', ...(await read(page, long.index)) });

	await run(page, "before_restart = 1");
	await page.evaluate(() => window.Jupyter.notebook.kernel.restart());
	await page.waitForFunction(() => window.Jupyter.notebook.kernel.is_connected(), null,
		{ timeout: WAIT, polling: 100 });
	await idle(page);
	const after = await run(page, "print('before_restart' in dir())");
	emit({ step: 'restart', kernel: await page.evaluate(() => window.Jupyter.notebook.kernel.id),
		...after });

	emit({ step: 'set', ...(await run(page,
		"import pandas as pd\nkept = 'survives'; counter = 7\n" +
		"frame = pd.DataFrame({'sq': [1, 4, 9]}); print('set')")) });
	// Left idle with the page open: the daemon hibernates the session.
	const deadline = Date.now() + 120000;
	let m = await gatewayModel(kid);
	while (m?.cellblock?.state !== 'hibernated' && Date.now() < deadline) {
		await page.waitForTimeout(250);
		m = await gatewayModel(kid);
	}
	emit({ step: 'hibernate', model: m });
	emit({ step: 'resume', ...(await run(page, "print(kept, counter, frame['sq'].sum())")) });
	emit({ step: 'model', model: await gatewayModel(kid) });
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: FLAGS,
	headless: true, timeout: WAIT });
let code = 0;
const page = await browser.newPage({ viewport: { width: 1200, height: 1600 } });
page.on('pageerror', (e) => process.stderr.write('pageerror: ' + e + '\n'));
try {
	await main(page);
	emit({ done: true });
} catch (e) {
	emit({ error: String(e && e.stack || e) });
	code = 1;
} finally {
	try {
		await page.screenshot({ path: shot, fullPage: true, timeout: WAIT });
	} catch (e) {
		process.stderr.write('screenshot: ' + e + '\n');
	}
	await browser.close();
}
process.exit(code);
