// A plain MCP client (the official TypeScript SDK, no OAuth of its own) for one conformance
// scenario, run by mcp-conformance-client against mcpproxyd's local port:
//   node client.mjs http://127.0.0.1:PORT/      (scenario in MCP_CONFORMANCE_SCENARIO)
// Exit 0: done; 3: the daemon says a login (or a new one, for more scopes) is needed; 1: else.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const NEEDS_LOGIN = 3;
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? '';
const url = new URL(process.argv[2]);

// What each scenario's server expects a client to do once connected.
const steps = {
  initialize: async (c) => { await c.listTools(); },
  tools_call: async (c) => {
    await c.listTools();
    await c.callTool({ name: 'add_numbers', arguments: { a: 5, b: 3 } });
  },
  'elicitation-sep1034-client-defaults': async (c) => {
    await c.listTools();
    await c.callTool({ name: 'test_client_elicitation_defaults', arguments: {} });
  },
  'sse-retry': async (c) => {
    await c.listTools();
    await c.callTool({ name: 'test_reconnection', arguments: {} });
  },
};
const authSteps = async (c) => {
  await c.listTools();
  await c.callTool({ name: 'test-tool', arguments: {} });
};

async function main() {
  const client = new Client(
    { name: 'mcpproxyd-conformance-client', version: '1.0.0' },
    { capabilities: { elicitation: { form: { applyDefaults: true } } } },
  );
  // Accept with nothing filled in: the SDK applies the schema's defaults (SEP-1034).
  client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: {} }));
  const transport = new StreamableHTTPClientTransport(url);
  await client.connect(transport);
  const run = steps[scenario] ?? (scenario.startsWith('auth/') ? authSteps : null);
  if (!run) throw new Error(`no steps for scenario ${scenario}`);
  await run(client);
  await transport.close();
}

// The daemon's answers that a login would fix: its needs-login 401, and a step-up's
// JSON-RPC error (which names `mcpproxyctl login` unless a new login will not help).
function needsLogin(error) {
  const text = String(error?.message ?? error);
  if (/a new login will not help/.test(text)) return false;
  return /mcpproxyctl login/.test(text) || /\b401\b/.test(text);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error('client:', error?.message ?? error);
    process.exit(needsLogin(error) ? NEEDS_LOGIN : 1);
  },
);
