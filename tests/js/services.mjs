// services.mjs: drive @jupyterlab/services 7 (JupyterLab's own client) against a gateway, one JSON command a line.
//
// usage: node services.mjs URL TOKEN FRAMING    (FRAMING: v1 | legacy)
//
// The pytest writes commands on stdin and reads one JSON answer per command
// on stdout ({"seq", "ok", ...}); output that arrives while a cell runs is
// also reported at once as {"ev": "stream", "tag", "text"} lines, so a test
// can act in the middle of a cell (drop the socket, kill the daemon).
//
//   op          arguments          answer
//   start                          {id, protocol}        POST /api/kernels, then kernel_info over the socket
//   connect     id                 {id, protocol}        an existing kernel
//   exec        code, tag          {status, stdout, types}  execute_request, every iopub of it
//   comm_echo   blobs (hex)        {data, buffers (hex)} comm_msg with binary buffers, echoed reversed
//   connected                      {status}              wait until the socket is (re)connected
//   list                           {status, ids}         GET /api/kernels
//   get         id                 {model}               KernelAPI.getKernelModel (undefined on 404)
//   kill        id                 {error}               KernelAPI.shutdownKernel
//   quit                           {}
//
// "legacy" hands the library a WebSocket that never offers a subprotocol, as
// a server without v1 would answer: the library then speaks the legacy
// framing (JSON text frames, binary frames with u32 offsets).
import readline from 'node:readline';
import services from '@jupyterlab/services';
import WebSocket from 'ws';

const { KernelAPI, KernelManager, ServerConnection } = services;
// stdout carries the answers: the library's own logging goes to stderr.
console.log = console.warn = console.info = console.debug = console.error;
const [url, token, framing] = process.argv.slice(2);
const STEP_MS = 60000;          // every step is bounded

const protocols = [];
class RecordingWS extends WebSocket {
	constructor(u, protos) {
		super(u, framing === 'legacy' ? [] : protos);
		this.addEventListener('open', () => protocols.push(this.protocol));
	}
}

const settings = ServerConnection.makeSettings({
	baseUrl: url + '/',
	wsUrl: url.replace(/^http/, 'ws') + '/',
	token,
	appendToken: true,
	WebSocket: RecordingWS,
});
const manager = new KernelManager({ serverSettings: settings });
let kernel = null;

function bounded(p, what) {
	let t;
	const timer = new Promise((_, rej) => {
		t = setTimeout(() => rej(new Error('timed out: ' + what)), STEP_MS);
	});
	return Promise.race([p, timer]).finally(() => clearTimeout(t));
}

function emit(obj) {
	process.stdout.write(JSON.stringify(obj) + '\n');
}

const hex = (buf) => Buffer.from(buf.buffer ?? buf, buf.byteOffset ?? 0,
	buf.byteLength).toString('hex');

async function opened(k) {
	kernel = k;
	await bounded(k.info, 'kernel_info');
	return { id: k.id, protocol: protocols[protocols.length - 1] ?? null };
}

async function exec({ code, tag }) {
	const future = kernel.requestExecute({ code, stop_on_error: true });
	let stdout = '';
	const types = [];
	future.onIOPub = (msg) => {
		types.push(msg.header.msg_type);
		if (msg.header.msg_type === 'stream' && msg.content.name === 'stdout') {
			stdout += msg.content.text;
			emit({ ev: 'stream', tag, text: msg.content.text });
		}
	};
	const reply = await bounded(future.done, 'execute ' + tag);
	return { status: reply.content.status, stdout, types };
}

async function commEcho({ blobs }) {
	const comm = kernel.createComm('echo');
	const back = new Promise((res) => { comm.onMsg = res; });
	comm.open({});
	comm.send({ ask: 'reverse' }, {}, blobs.map((h) => new Uint8Array(Buffer.from(h, 'hex')).buffer));
	const msg = await bounded(back, 'comm reply');
	return { data: msg.content.data, buffers: (msg.buffers ?? []).map(hex) };
}

async function connected() {
	const deadline = Date.now() + STEP_MS;
	while (kernel.connectionStatus !== 'connected' && Date.now() < deadline)
		await new Promise((r) => setTimeout(r, 50));
	return { status: kernel.connectionStatus, opened: protocols.length };
}

const ops = {
	start: async () => opened(await bounded(manager.startNew({ name: 'python3' }), 'start')),
	connect: async ({ id }) => opened(manager.connectTo({ model: { id, name: 'python3' } })),
	exec,
	comm_echo: commEcho,
	connected,
	list: async () => {
		const r = await ServerConnection.makeRequest(url + '/api/kernels', {}, settings);
		return { status: r.status, ids: r.ok ? (await r.json()).map((m) => m.id) : [] };
	},
	get: async ({ id }) => ({ model: (await KernelAPI.getKernelModel(id, settings)) ?? null }),
	kill: async ({ id }) => {
		try {
			await KernelAPI.shutdownKernel(id, settings);
			return { error: null };
		} catch (e) {
			return { error: String(e.message), status: e.response?.status ?? null };
		}
	},
	quit: async () => {
		if (kernel)
			kernel.dispose();
		manager.dispose();
		setTimeout(() => process.exit(0), 10);
		return {};
	},
};

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
	const cmd = JSON.parse(line);
	try {
		emit({ seq: cmd.seq, ok: true, ...(await ops[cmd.op](cmd)) });
	} catch (e) {
		emit({ seq: cmd.seq, ok: false, error: String(e && e.stack || e) });
	}
});
rl.on('close', () => process.exit(0));
