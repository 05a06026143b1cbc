// tollgate's Anthropic Messages API (POST /v1/messages) through the official
// @anthropic-ai/sdk npm package (pinned in package.json / package-lock.json).
//
// Run by an e2e test (as tests/e2e/sdk.py runs tests/sdk/sdk-test.cjs), which
// starts the servers and passes:
//   TG_BASE_URL      http://127.0.0.1:<port> (lighttpd serving tollgate);
//                    the SDK appends /v1/messages itself
//   TG_KEY           the key (sent as Authorization: Bearer by this SDK,
//                    as x-api-key by create_x_api_key)
//   TG_MODEL         the model name to use (default claude-sonnet-4-5)
//   TG_USER          a customer with budget left, sent as metadata.user_id
//                    (create, create_x_api_key, stream)
//   TG_HEADER_USER   a customer with budget left, sent as the header
//                    x-litellm-customer-id and no metadata (create_header;
//                    default TG_USER)
//   TG_OVER_USER     a customer over budget, sent as metadata.user_id
//                    (refusal, refusal_stream)
//   TG_COUNT_USER    a customer named (x-litellm-customer-id) on the
//                    count_tokens call, which must not be charged
//   TG_OVER_KEY      a key over its budget (refusal_key, with TG_USER)
//   TG_MASTER_KEY    optional: with it, each step reads the customer's spend
//                    from /customer/info before and after ("before", "after")
//   TG_GPT_MODEL     an OpenAI-format model name (default TG_MODEL) for the
//                    gpt_* steps: tollgate sends the Messages API call as a
//                    chat completion and answers in Anthropic's shape
//   TG_SCENARIOS     optional: the steps to run, comma- or space-separated;
//                    the command line's arguments, when given, win. Default:
//                    all of create create_header create_x_api_key stream
//                    count_tokens refusal refusal_stream refusal_key, in
//                    that order (the gpt_* steps only when named: gpt_create
//                    gpt_stream gpt_tool gpt_tool_stream).
// It prints ONE JSON object on stdout: {"sdk_version", "max_retries",
// "scenarios": [the names run], "errors": [...], <name>: what that step saw}.
// Anything unexpected is reported in "errors", never thrown; the exit code is
// 0 whenever the JSON was printed. Each request carries a "fake" field, which
// tollgate passes to tests/e2e/fake_upstream.py to script the usage; but the
// gpt_* steps' requests are translated, which drops it, so they carry none:
// the e2e test queues the fake's answers (POST /_next) in the order the
// steps call (gpt_tool makes two calls).
'use strict';

const Anthropic = require('@anthropic-ai/sdk');
const { VERSION } = require('@anthropic-ai/sdk/version');

const base = process.env.TG_BASE_URL;
const key = process.env.TG_KEY;
const model = process.env.TG_MODEL || 'claude-sonnet-4-5';
const user = process.env.TG_USER;
const headerUser = process.env.TG_HEADER_USER || user;
const overUser = process.env.TG_OVER_USER;
const masterKey = process.env.TG_MASTER_KEY;
const countUser = process.env.TG_COUNT_USER;
const overKey = process.env.TG_OVER_KEY;
const gptModel = process.env.TG_GPT_MODEL || model;

const ALL = ['create', 'create_header', 'create_x_api_key', 'stream', 'count_tokens', 'refusal',
             'refusal_stream', 'refusal_key'];
const GPT = ['gpt_create', 'gpt_stream', 'gpt_tool', 'gpt_tool_stream'];

// The usage the fake upstream is told to report for each charged step
// (tests/e2e/fake_upstream.py: cache_creation_5m / cache_creation_1h give
// usage.cache_creation and cache_creation_input_tokens = their sum); the
// e2e test prices them by hand.
const USAGE = {
  create: { input_tokens: 17, output_tokens: 23, cache_read_input_tokens: 41,
            cache_creation_5m: 53, cache_creation_1h: 61 },
  create_header: { input_tokens: 19, output_tokens: 29, cache_creation_input_tokens: 11 },
  create_x_api_key: { input_tokens: 13, output_tokens: 11 },
  stream: { input_tokens: 31, output_tokens: 37, cache_read_input_tokens: 7,
            cache_creation_5m: 5, cache_creation_1h: 3 },
};

// Every HTTP request the SDK makes, with its answer's status.
let fetchCalls = [];
const countingFetch = async (url, init) => {
  const call = { url: String(url), method: (init && init.method) || 'GET', status: null,
                 t: Date.now() };
  fetchCalls.push(call);
  const r = await fetch(url, init);
  call.status = r.status;
  return r;
};
const messageCalls = () => fetchCalls.filter((c) => new URL(c.url).pathname === '/v1/messages');

// @anthropic-ai/sdk 1.x (API version 2026-10-21) sends the apiKey as
// "Authorization: Bearer <key>" with anthropic-version 2026-10-21; the 0.x
// SDKs (and Claude Code with ANTHROPIC_API_KEY) send "x-api-key: <key>" with
// anthropic-version 2023-06-01. `client` is the SDK as it comes; `xKeyClient`
// sends the key the old way (x-api-key, no Authorization).
const client = new Anthropic({
  apiKey: key, // given here, so ANTHROPIC_API_KEY / ANTHROPIC_AUTH_TOKEN are not read
  baseURL: base,
  // maxRetries left at its default (2), as an application would: a refusal
  // with x-should-retry: false must still be one request.
  timeout: 30000,
  fetch: countingFetch,
});
// The same SDK with a key over its budget (refusal_key).
const overKeyClient = new Anthropic({
  apiKey: overKey || 'unset',
  baseURL: base,
  timeout: 30000,
  fetch: countingFetch,
});
const xKeyClient = new Anthropic({
  apiKey: key,
  baseURL: base,
  timeout: 30000,
  fetch: countingFetch,
  // null drops the Authorization header the SDK built from apiKey
  defaultHeaders: { 'x-api-key': key, authorization: null, 'anthropic-version': '2023-06-01' },
});

async function spendOf(id) {
  if (!masterKey || !id) return null;
  const r = await fetch(`${base}/customer/info?end_user_id=${encodeURIComponent(id)}`, {
    headers: { Authorization: `Bearer ${masterKey}` },
  });
  const text = await r.text();
  // keep the number's text exact (no float rounding): pick it out of the JSON
  const m = text.match(/"spend"\s*:\s*([-+0-9.eE]+)/);
  return m ? m[1] : null;
}

function header(h, name) {
  if (!h) return null;
  return typeof h.get === 'function' ? h.get(name) : h[name] === undefined ? null : h[name];
}

// What a thrown SDK error carries, as plain JSON.
function errorInfo(e) {
  return {
    raised: true,
    name: e && e.constructor && e.constructor.name,
    is_api_error: e instanceof Anthropic.APIError,
    is_rate_limit_error: e instanceof Anthropic.RateLimitError,
    status: e && e.status === undefined ? null : e && e.status,
    // the body as sent: {"type": "error", "error": {"type", "message"}}
    error: e && e.error === undefined ? null : e && e.error,
    error_type: (e && e.error && e.error.error && e.error.error.type) || null,
    error_message: (e && e.error && e.error.error && e.error.error.message) || null,
    message: e && e.message,
    request_id: (e && e.requestID) || null,
    should_retry: header(e && e.headers, 'x-should-retry'),
  };
}

function textOf(msg) {
  return (msg.content || []).filter((b) => b.type === 'text').map((b) => b.text).join('');
}

// The request body: the user's question, and the fake upstream's script.
function body(extra, usage) {
  return {
    model,
    max_tokens: 64,
    messages: [{ role: 'user', content: 'Say hello' }],
    fake: { usage },
    ...extra,
  };
}

const steps = {
  // messages.create, the customer in metadata.user_id
  async create() {
    const before = await spendOf(user);
    const { data, response } = await client.messages
      .create(body({ metadata: { user_id: user } }, USAGE.create))
      .withResponse();
    return {
      before,
      after: await spendOf(user),
      id: data.id,
      type: data.type,
      role: data.role,
      model: data.model,
      text: textOf(data),
      stop_reason: data.stop_reason,
      usage: data.usage,
      call_id: response.headers.get('x-litellm-call-id'),
      cost_header: response.headers.get('x-litellm-response-cost'),
      requests: messageCalls().length,
    };
  },

  // messages.create, the customer in the x-litellm-customer-id header
  async create_header() {
    const before = await spendOf(headerUser);
    const { data, response } = await client.messages
      .create(body({}, USAGE.create_header),
              { headers: { 'x-litellm-customer-id': headerUser } })
      .withResponse();
    return {
      before,
      after: await spendOf(headerUser),
      id: data.id,
      type: data.type,
      text: textOf(data),
      usage: data.usage,
      call_id: response.headers.get('x-litellm-call-id'),
      cost_header: response.headers.get('x-litellm-response-cost'),
      requests: messageCalls().length,
    };
  },

  // messages.create with x-api-key (no Authorization), anthropic-version
  // 2023-06-01, the customer in metadata.user_id
  async create_x_api_key() {
    const before = await spendOf(user);
    const { data, response } = await xKeyClient.messages
      .create(body({ metadata: { user_id: user } }, USAGE.create_x_api_key))
      .withResponse();
    return {
      before,
      after: await spendOf(user),
      id: data.id,
      type: data.type,
      text: textOf(data),
      usage: data.usage,
      call_id: response.headers.get('x-litellm-call-id'),
      cost_header: response.headers.get('x-litellm-response-cost'),
      requests: messageCalls().length,
    };
  },

  // messages.stream: the event types in order, the text, finalMessage();
  // the output count comes in three cumulative message_delta events
  async stream() {
    const before = await spendOf(user);
    const b = body({ metadata: { user_id: user },
                     messages: [{ role: 'user', content: 'Count to three' }] }, USAGE.stream);
    b.fake.chunks = 3;
    b.fake.delta_usage_steps = 3;
    const stream = client.messages.stream(b);
    const types = [];
    let text = '';
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'content_block_delta' && ev.delta && ev.delta.type === 'text_delta') {
        text += ev.delta.text;
      }
    }
    const final = await stream.finalMessage();
    const response = stream.response;
    return {
      before,
      after: await spendOf(user),
      types,
      text,
      final_id: final.id,
      final_text: textOf(final),
      final_stop_reason: final.stop_reason,
      final_usage: final.usage,
      content_type: response && response.headers.get('content-type'),
      call_id: response && response.headers.get('x-litellm-call-id'),
      requests: messageCalls().length,
    };
  },

  // messages.countTokens: POST /v1/messages/count_tokens, naming a
  // customer (TG_COUNT_USER) by the header: not charged
  async count_tokens() {
    const before = await spendOf(countUser);
    const { data, response } = await client.messages
      .countTokens({
        model,
        messages: [{ role: 'user', content: 'Say hello' }],
      }, countUser ? { headers: { 'x-litellm-customer-id': countUser } } : undefined)
      .withResponse();
    return {
      before,
      after: await spendOf(countUser),
      status: response.status,
      url: fetchCalls.length ? fetchCalls[fetchCalls.length - 1].url : null,
      input_tokens: data.input_tokens,
      keys: Object.keys(data).sort(),
      call_id: response.headers.get('x-litellm-call-id'),
      requests: fetchCalls.filter((c) => new URL(c.url).pathname === '/v1/messages/count_tokens')
        .length,
    };
  },

  // a customer over budget: the SDK's error, after exactly one request
  async refusal() {
    const before = await spendOf(overUser);
    const t0 = Date.now();
    let res;
    try {
      await client.messages.create(
        body({ metadata: { user_id: overUser },
               messages: [{ role: 'user', content: "What's the weather like in Boston today?" }] },
             { input_tokens: 11, output_tokens: 13 }));
      res = { raised: false };
    } catch (e) {
      res = errorInfo(e);
    }
    res.ms = Date.now() - t0;
    res.requests = messageCalls().length;
    res.statuses = messageCalls().map((c) => c.status);
    res.before = before;
    res.after = await spendOf(overUser);
    return res;
  },

  // a key over its budget (the customer TG_USER has budget left): the
  // SDK's error, after exactly one request
  async refusal_key() {
    const before = await spendOf(user);
    const t0 = Date.now();
    let res;
    try {
      await overKeyClient.messages.create(
        body({ metadata: { user_id: user } }, { input_tokens: 11, output_tokens: 13 }));
      res = { raised: false };
    } catch (e) {
      res = errorInfo(e);
    }
    res.ms = Date.now() - t0;
    res.requests = messageCalls().length;
    res.statuses = messageCalls().map((c) => c.status);
    res.before = before;
    res.after = await spendOf(user);
    return res;
  },

  // the same, streamed (messages.stream): the error surfaces from the stream
  async refusal_stream() {
    const before = await spendOf(overUser);
    const t0 = Date.now();
    let res;
    const types = [];
    try {
      const stream = client.messages.stream(
        body({ metadata: { user_id: overUser } }, { input_tokens: 11, output_tokens: 13 }));
      for await (const ev of stream) types.push(ev.type);
      await stream.finalMessage();
      res = { raised: false };
    } catch (e) {
      res = errorInfo(e);
    }
    res.types = types;
    res.ms = Date.now() - t0;
    res.requests = messageCalls().length;
    res.statuses = messageCalls().map((c) => c.status);
    res.before = before;
    res.after = await spendOf(overUser);
    return res;
  },

  // --- an OpenAI-format model (TG_GPT_MODEL): the Messages API call is
  // sent upstream as a chat completion and answered in Anthropic's shape ---

  // messages.create, with a system prompt
  async gpt_create() {
    const before = await spendOf(user);
    const { data, response } = await client.messages
      .create({
        model: gptModel,
        max_tokens: 100,
        system: 'Be brief.',
        metadata: { user_id: user },
        messages: [{ role: 'user', content: 'Say hello' }],
      })
      .withResponse();
    return {
      before,
      after: await spendOf(user),
      id: data.id,
      type: data.type,
      role: data.role,
      model: data.model,
      content: data.content,
      text: textOf(data),
      stop_reason: data.stop_reason,
      stop_sequence: data.stop_sequence,
      usage: data.usage,
      call_id: response.headers.get('x-litellm-call-id'),
      cost_header: response.headers.get('x-litellm-response-cost'),
      requests: messageCalls().length,
    };
  },

  // messages.stream: the events, the text deltas, finalMessage()
  async gpt_stream() {
    const before = await spendOf(user);
    const stream = client.messages.stream({
      model: gptModel,
      max_tokens: 100,
      metadata: { user_id: user },
      messages: [{ role: 'user', content: 'Count to three' }],
    });
    const types = [];
    let text = '';
    let deltaUsage = null;
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'content_block_delta' && ev.delta && ev.delta.type === 'text_delta') {
        text += ev.delta.text;
      }
      if (ev.type === 'message_delta') deltaUsage = ev.usage;
    }
    const final = await stream.finalMessage();
    const response = stream.response;
    return {
      before,
      after: await spendOf(user),
      types,
      text,
      delta_usage: deltaUsage,
      final_content: final.content,
      final_text: textOf(final),
      final_stop_reason: final.stop_reason,
      final_usage: final.usage,
      content_type: response && response.headers.get('content-type'),
      call_id: response && response.headers.get('x-litellm-call-id'),
      requests: messageCalls().length,
    };
  },

  // a tool use (the upstream answers tool_calls), then the tool's result
  // sent back and the final text
  async gpt_tool() {
    const before = await spendOf(user);
    const tools = [{
      name: 'get_weather',
      description: 'The weather in a city',
      input_schema: {
        type: 'object',
        properties: { city: { type: 'string' }, days: { type: 'integer' } },
        required: ['city'],
      },
    }];
    const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const first = await client.messages
      .create({ model: gptModel, max_tokens: 100, metadata: { user_id: user }, messages, tools })
      .withResponse();
    const uses = first.data.content.filter((b) => b.type === 'tool_use');
    messages.push({ role: 'assistant', content: first.data.content });
    messages.push({
      role: 'user',
      content: uses.map((b) => ({
        type: 'tool_result', tool_use_id: b.id, content: 'sunny, 21 C',
      })),
    });
    const second = await client.messages
      .create({ model: gptModel, max_tokens: 100, metadata: { user_id: user }, messages, tools })
      .withResponse();
    return {
      before,
      after: await spendOf(user),
      first: {
        type: first.data.type,
        content: first.data.content,
        stop_reason: first.data.stop_reason,
        usage: first.data.usage,
        call_id: first.response.headers.get('x-litellm-call-id'),
      },
      second: {
        type: second.data.type,
        content: second.data.content,
        text: textOf(second.data),
        stop_reason: second.data.stop_reason,
        usage: second.data.usage,
        call_id: second.response.headers.get('x-litellm-call-id'),
      },
      requests: messageCalls().length,
    };
  },

  // a tool use streamed: the SDK builds the input from input_json_delta
  async gpt_tool_stream() {
    const before = await spendOf(user);
    const stream = client.messages.stream({
      model: gptModel,
      max_tokens: 100,
      metadata: { user_id: user },
      messages: [{ role: 'user', content: 'What is the weather in Lyon?' }],
      tools: [{ name: 'get_weather', input_schema: { type: 'object' } }],
    });
    const types = [];
    let partial = '';
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'content_block_delta' && ev.delta && ev.delta.type === 'input_json_delta') {
        partial += ev.delta.partial_json;
      }
    }
    const final = await stream.finalMessage();
    const response = stream.response;
    return {
      before,
      after: await spendOf(user),
      types,
      partial_json: partial,
      final_content: final.content,
      final_stop_reason: final.stop_reason,
      final_usage: final.usage,
      call_id: response && response.headers.get('x-litellm-call-id'),
      requests: messageCalls().length,
    };
  },
};

function chosen() {
  const args = process.argv.slice(2);
  const names = args.length ? args : (process.env.TG_SCENARIOS || '').split(/[\s,]+/);
  const list = names.filter((n) => n !== '');
  return list.length ? list : ALL;
}

async function main() {
  const out = {
    sdk_version: VERSION || null,
    max_retries: client.maxRetries,
    scenarios: chosen(),
    errors: [],
  };
  for (const name of out.scenarios) {
    if (!Object.prototype.hasOwnProperty.call(steps, name)) {
      out.errors.push(`${name}: no such scenario (known: ${ALL.concat(GPT).join(' ')})`);
      continue;
    }
    fetchCalls = [];
    try {
      out[name] = await steps[name]();
    } catch (e) {
      out.errors.push(`${name}: ${e && e.stack ? e.stack : e}`);
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ errors: [`main: ${e && e.stack ? e.stack : e}`] }) + '\n');
});
