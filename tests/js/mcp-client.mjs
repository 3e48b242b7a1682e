// mcp-client.mjs: the official MCP TypeScript SDK's Client driving cellblock, step by step, for tests/test_mcp.py.
//
// Usage: node mcp-client.mjs stdio CELLBLOCK_BINARY
//        node mcp-client.mjs http URL TOKEN
// Reads a JSON array of steps on stdin and prints one JSON object: the
// server's version and capabilities, and each step's outcome. A step is
//   {"list": true}                       tools/list; every schema compiled
//   {"tool": NAME, "args": {...},        tools/call
//    "progress": true,                   collect progress notifications
//    "abortAfterProgress": N,            cancel the call after N of them
//    "timeout": MS}                      the SDK's request timeout
// An SDK error (a JSON-RPC error, a failed output-schema check, a timeout)
// is recorded in the step as {"error": {"code", "message"}}; the run goes on.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import Ajv from "ajv";

function transportFor(argv) {
  if (argv[0] === "stdio")
    return new StdioClientTransport({ command: argv[1], args: ["mcp"], env: process.env,
                                      stderr: "inherit" });
  if (argv[0] === "http")
    return new StreamableHTTPClientTransport(new URL(argv[1]), {
      requestInit: { headers: { Authorization: `token ${argv[2]}` } } });
  throw new Error(`unknown transport ${argv[0]}`);
}

async function readStdin() {
  let text = "";
  for await (const chunk of process.stdin) text += chunk;
  return JSON.parse(text);
}

function listStep(tools) {
  const ajv = new Ajv({ strict: true, allowUnionTypes: true });
  const out = [];
  for (const t of tools) {
    ajv.compile(t.inputSchema);          // throws on a schema that is not JSON Schema
    if (t.outputSchema) ajv.compile(t.outputSchema);
    out.push({ name: t.name, description: t.description, inputSchema: t.inputSchema,
               outputSchema: t.outputSchema ?? null });
  }
  return { tools: out };
}

async function callStep(client, step) {
  const progress = [];
  const ac = new AbortController();
  const opts = { signal: ac.signal, timeout: step.timeout ?? 60000, resetTimeoutOnProgress: true };
  if (step.progress || step.abortAfterProgress) {
    opts.onprogress = (p) => {
      progress.push({ at: Date.now(), ...p });
      if (step.abortAfterProgress && progress.length >= step.abortAfterProgress)
        ac.abort("the test cancels it");
    };
  }
  try {
    const result = await client.callTool({ name: step.tool, arguments: step.args ?? {} },
                                         undefined, opts);
    return { result, progress, doneAt: Date.now() };
  } catch (e) {
    return { error: { code: e.code ?? null, message: String(e.message ?? e) }, progress,
             doneAt: Date.now() };
  }
}

async function main() {
  const argv = process.argv.slice(2);
  const steps = await readStdin();
  const client = new Client({ name: "cellblock-test", version: "1.0.0" });
  const transport = transportFor(argv);
  await client.connect(transport);
  const report = { server: client.getServerVersion(), capabilities: client.getServerCapabilities(),
                   sessionId: transport.sessionId ?? null, steps: [] };
  for (const step of steps) {
    if (step.list) report.steps.push(listStep((await client.listTools()).tools));
    else report.steps.push(await callStep(client, step));
  }
  if (transport.terminateSession) await transport.terminateSession();
  await client.close();
  process.stdout.write(JSON.stringify(report) + "\n");
}

main().catch((e) => { process.stderr.write(`mcp-client: ${e.stack ?? e}\n`); process.exit(1); });
