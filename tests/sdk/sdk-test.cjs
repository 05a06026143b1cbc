// tollgate through the official openai npm package (SPEC: "a client written
// for LiteLLM's /chat/completions + /customer/* must work unchanged").
//
// Run by tests/e2e/sdk.py, which starts the servers and passes:
//   TG_BASE_URL    http://127.0.0.1:<port> (lighttpd serving tollgate)
//   TG_API_KEY     the master key
//   TG_USER        a customer with budget left
//   TG_OVER_USER   a customer over budget (max_budget 0)
//   TG_MODEL       the model name to use
// It does the calls, reads /customer/info around each, and prints ONE JSON
// object on stdout with what it saw; sdk.py checks it and speaks TAP.
// Anything unexpected is reported in the JSON ("errors"), never thrown.
'use strict';

const OpenAI = require('openai');

const base = process.env.TG_BASE_URL;
const key = process.env.TG_API_KEY;
const user = process.env.TG_USER;
const overUser = process.env.TG_OVER_USER;
const model = process.env.TG_MODEL;

let fetchCalls = [];
const countingFetch = async (url, init) => {
  fetchCalls.push({ url: String(url), method: (init && init.method) || 'GET' });
  return fetch(url, init);
};

const client = new OpenAI({
  apiKey: key,
  baseURL: base,
  maxRetries: 2, // the default, set explicitly: 429 must still not be retried
  timeout: 30000,
  fetch: countingFetch,
});

async function spendOf(id) {
  const r = await fetch(`${base}/customer/info?end_user_id=${encodeURIComponent(id)}`, {
    headers: { Authorization: `Bearer ${key}` },
  });
  const text = await r.text();
  // keep the number's text exact (no float rounding): pick it out of the JSON
  const m = text.match(/"spend"\s*:\s*([-+0-9.eE]+)/);
  return { status: r.status, spend: m ? m[1] : null };
}

async function main() {
  const out = { sdk_version: OpenAI.VERSION || null, errors: [] };
  const step = async (name, fn) => {
    try {
      out[name] = await fn();
    } catch (e) {
      out.errors.push(`${name}: ${e && e.stack ? e.stack : e}`);
    }
  };

  await step('nonstream', async () => {
    const before = await spendOf(user);
    const { data, response } = await client.chat.completions
      .create({
        model,
        user,
        messages: [{ role: 'user', content: 'Say hello' }],
        fake: { usage: { prompt_tokens: 17, completion_tokens: 23 } },
      })
      .withResponse();
    const after = await spendOf(user);
    return {
      before: before.spend,
      after: after.spend,
      id: data.id,
      object: data.object,
      content: data.choices && data.choices[0] && data.choices[0].message.content,
      usage: data.usage,
      call_id: response.headers.get('x-litellm-call-id'),
      cost_header: response.headers.get('x-litellm-response-cost'),
    };
  });

  await step('stream', async () => {
    const before = await spendOf(user);
    const { data: stream, response } = await client.chat.completions
      .create({
        model,
        user,
        stream: true,
        messages: [{ role: 'user', content: 'Count to three' }],
        fake: { chunks: 3, usage: { prompt_tokens: 19, completion_tokens: 29 } },
      })
      .withResponse();
    let text = '';
    let chunks = 0;
    let usageChunks = 0;
    for await (const chunk of stream) {
      chunks++;
      if (chunk.usage) usageChunks++;
      for (const c of chunk.choices || []) {
        if (c.delta && typeof c.delta.content === 'string') text += c.delta.content;
      }
    }
    const after = await spendOf(user);
    return {
      before: before.spend,
      after: after.spend,
      text,
      chunks,
      usage_chunks: usageChunks,
      call_id: response.headers.get('x-litellm-call-id'),
      content_type: response.headers.get('content-type'),
    };
  });

  await step('stream_usage', async () => {
    const stream = await client.chat.completions.create({
      model,
      user,
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'Count to two' }],
      fake: { chunks: 2, usage: { prompt_tokens: 7, completion_tokens: 5 } },
    });
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
    }
    return { usage };
  });

  await step('models', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push({ id: m.id, object: m.object, owned_by: m.owned_by });
    return ids;
  });

  await step('over_budget', async () => {
    const before = await spendOf(overUser);
    fetchCalls = [];
    const res = { before: before.spend };
    try {
      await client.chat.completions.create({
        model,
        user: overUser,
        messages: [{ role: 'user', content: "What's the weather like in Boston today?" }],
      });
      res.raised = false;
    } catch (e) {
      res.raised = true;
      res.name = e && e.constructor && e.constructor.name;
      res.is_api_error = e instanceof OpenAI.APIError;
      res.is_rate_limit_error = e instanceof OpenAI.RateLimitError;
      res.status = e && e.status;
      res.error = e && e.error;
      res.message = e && e.message;
      res.should_retry = e && e.headers && (typeof e.headers.get === 'function'
        ? e.headers.get('x-should-retry') : e.headers['x-should-retry']);
    }
    res.requests = fetchCalls.filter((c) => c.url.includes('/chat/completions')).length;
    res.after = (await spendOf(overUser)).spend;
    return res;
  });

  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ errors: [`main: ${e && e.stack ? e.stack : e}`] }) + '\n');
});
