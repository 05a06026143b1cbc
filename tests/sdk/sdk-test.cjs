// tollgate through the official openai npm package (SPEC: "a client written
// for LiteLLM's /chat/completions + /customer/* must work unchanged").
//
// Run by tests/e2e/sdk.py, which starts the servers and passes:
//   TG_BASE_URL    http://127.0.0.1:<port> (lighttpd serving tollgate)
//   TG_API_KEY     the master key
//   TG_USER        a customer with budget left
//   TG_OVER_USER   a customer over budget (max_budget 0)
//   TG_APIS_USER   a customer with budget left for the Responses,
//                  embeddings and legacy completions calls
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
const apisUser = process.env.TG_APIS_USER || user;

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

// What a thrown SDK error carries, as plain JSON.
function errorInfo(e) {
  return {
    raised: true,
    name: e && e.constructor && e.constructor.name,
    is_api_error: e instanceof OpenAI.APIError,
    is_rate_limit_error: e instanceof OpenAI.RateLimitError,
    status: e && e.status,
    error: e && e.error,
    message: e && e.message,
    should_retry: e && e.headers && (typeof e.headers.get === 'function'
      ? e.headers.get('x-should-retry') : e.headers['x-should-retry']),
  };
}

// An embedding as it came out of the SDK: its JS type, and the value.
function embeddingInfo(d) {
  const v = d.embedding;
  return {
    index: d.index,
    object: d.object,
    type: Array.isArray(v) ? 'array' : typeof v,
    all_numbers: Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x)),
    value: v,
  };
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

  // --- the Responses API (/v1/responses) ---
  await step('responses', async () => {
    const before = await spendOf(apisUser);
    const { data, response } = await client.responses
      .create({
        model,
        user: apisUser,
        input: 'Say hello',
        fake: { usage: { input_tokens: 31, output_tokens: 37 } },
      })
      .withResponse();
    const after = await spendOf(apisUser);
    return {
      before: before.spend,
      after: after.spend,
      id: data.id,
      object: data.object,
      status: data.status,
      output_text: data.output_text,
      usage: data.usage,
      call_id: response.headers.get('x-litellm-call-id'),
      cost_header: response.headers.get('x-litellm-response-cost'),
    };
  });

  await step('responses_stream', async () => {
    const before = await spendOf(apisUser);
    const { data: stream, response } = await client.responses
      .create({
        model,
        user: apisUser,
        stream: true,
        input: 'Count to three',
        fake: { chunks: 3, usage: { input_tokens: 41, output_tokens: 43 } },
      })
      .withResponse();
    const types = [];
    let text = '';
    let completed = null;
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'response.output_text.delta') text += ev.delta;
      if (ev.type === 'response.completed') completed = ev.response;
    }
    const after = await spendOf(apisUser);
    return {
      before: before.spend,
      after: after.spend,
      types,
      text,
      completed_usage: completed && completed.usage,
      completed_status: completed && completed.status,
      call_id: response.headers.get('x-litellm-call-id'),
      content_type: response.headers.get('content-type'),
    };
  });

  await step('responses_stream_helper', async () => {
    const before = await spendOf(apisUser);
    const stream = client.responses.stream({
      model,
      user: apisUser,
      input: 'Count to two',
      fake: { chunks: 2, usage: { input_tokens: 13, output_tokens: 11 } },
    });
    const types = [];
    for await (const ev of stream) types.push(ev.type);
    const final = await stream.finalResponse();
    const after = await spendOf(apisUser);
    return {
      before: before.spend,
      after: after.spend,
      types,
      id: final.id,
      status: final.status,
      // finalResponse() sets output_text only when it parses (a text
      // format or parseable tools: lib/ResponsesParser.js in 5.23.2), so
      // the text is read from the message items as well
      output_text: final.output_text === undefined ? null : final.output_text,
      message_text: (final.output || [])
        .filter((it) => it.type === 'message')
        .flatMap((it) => it.content || [])
        .filter((c) => c.type === 'output_text')
        .map((c) => c.text)
        .join(''),
      usage: final.usage,
    };
  });

  // --- /v1/embeddings: explicit float, the SDK's default, explicit base64 ---
  const embed = async (name, encodingFormat, promptTokens) => {
    await step(name, async () => {
      const before = await spendOf(apisUser);
      const req = {
        model,
        user: apisUser,
        input: ['a', 'b'],
        fake: { usage: { prompt_tokens: promptTokens } },
      };
      if (encodingFormat !== undefined) req.encoding_format = encodingFormat;
      const { data, response } = await client.embeddings.create(req).withResponse();
      const after = await spendOf(apisUser);
      return {
        before: before.spend,
        after: after.spend,
        object: data.object,
        data: (data.data || []).map(embeddingInfo),
        usage: data.usage,
        call_id: response.headers.get('x-litellm-call-id'),
      };
    });
  };
  await embed('embeddings_float', 'float', 5);
  await embed('embeddings_default', undefined, 6);
  await embed('embeddings_base64', 'base64', 7);

  // --- legacy /v1/completions ---
  await step('completions', async () => {
    const before = await spendOf(apisUser);
    const { data, response } = await client.completions
      .create({
        model,
        user: apisUser,
        prompt: 'Say this is a test',
        max_tokens: 7,
        fake: { usage: { prompt_tokens: 23, completion_tokens: 7 } },
      })
      .withResponse();
    const after = await spendOf(apisUser);
    return {
      before: before.spend,
      after: after.spend,
      id: data.id,
      object: data.object,
      text: data.choices && data.choices[0] && data.choices[0].text,
      usage: data.usage,
      call_id: response.headers.get('x-litellm-call-id'),
      cost_header: response.headers.get('x-litellm-response-cost'),
    };
  });

  await step('over_budget_responses', async () => {
    const before = await spendOf(overUser);
    fetchCalls = [];
    let res;
    try {
      await client.responses.create({
        model,
        user: overUser,
        input: "What's the weather like in Boston today?",
      });
      res = { raised: false };
    } catch (e) {
      res = errorInfo(e);
    }
    res.before = before.spend;
    res.requests = fetchCalls.filter((c) => c.url.includes('/responses')).length;
    res.after = (await spendOf(overUser)).spend;
    return res;
  });

  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ errors: [`main: ${e && e.stack ? e.stack : e}`] }) + '\n');
});
