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
//   TG_CLAUDE_MODEL   a model name whose deployment is anthropic/ (the
//                  claude_* steps: tollgate translates the chat completion
//                  into Anthropic's Messages API and back)
//   TG_CLAUDE_USER    the customer of the claude_* steps (default TG_USER)
//   TG_SCENARIOS   optional: the steps to run, comma- or space-separated;
//                  the command line's arguments, when given, win. Default:
//                  every step but the claude_* ones (DEFAULT below).
// It does the calls, reads /customer/info around each, and prints ONE JSON
// object on stdout with what it saw; sdk.py checks it and speaks TAP.
// Anything unexpected is reported in the JSON ("errors"), never thrown.
// The claude_* steps carry no "fake" field (a translated request drops
// it): sdk.py queues the fake upstream's answers (POST /_next) before it
// runs them, in the order they call (claude_create, claude_stream,
// claude_tools: two calls).
'use strict';

const OpenAI = require('openai');

const base = process.env.TG_BASE_URL;
const key = process.env.TG_API_KEY;
const user = process.env.TG_USER;
const overUser = process.env.TG_OVER_USER;
const model = process.env.TG_MODEL;
const apisUser = process.env.TG_APIS_USER || user;
const claudeModel = process.env.TG_CLAUDE_MODEL;
const claudeUser = process.env.TG_CLAUDE_USER || user;

const DEFAULT = ['nonstream', 'stream', 'stream_usage', 'models', 'over_budget', 'responses',
                 'responses_stream', 'responses_stream_helper', 'embeddings_float',
                 'embeddings_default', 'embeddings_base64', 'completions',
                 'over_budget_responses'];
const CLAUDE = ['claude_create', 'claude_stream', 'claude_tools'];

function chosen() {
  const args = process.argv.slice(2);
  const names = args.length ? args : (process.env.TG_SCENARIOS || '').split(/[\s,]+/);
  const list = names.filter((n) => n !== '');
  return list.length ? list : DEFAULT;
}

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
  const scenarios = chosen();
  const out = { sdk_version: OpenAI.VERSION || null, scenarios, errors: [] };
  for (const name of scenarios) {
    if (!DEFAULT.includes(name) && !CLAUDE.includes(name)) {
      out.errors.push(`${name}: no such scenario (known: ${DEFAULT.concat(CLAUDE).join(' ')})`);
    }
  }
  const step = async (name, fn) => {
    if (!scenarios.includes(name)) return;
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

  // --- a Claude model (an anthropic/ deployment): the chat completion is
  // sent as Anthropic's Messages API and answered back as chat ---
  const chatCalls = () => fetchCalls.filter((c) => c.url.includes('/chat/completions')).length;

  await step('claude_create', async () => {
    const before = await spendOf(claudeUser);
    fetchCalls = [];
    const { data, response } = await client.chat.completions
      .create({
        model: claudeModel,
        user: claudeUser,
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'Say hello' },
        ],
      })
      .withResponse();
    const after = await spendOf(claudeUser);
    const c = (data.choices && data.choices[0]) || {};
    return {
      before: before.spend,
      after: after.spend,
      id: data.id,
      object: data.object,
      model: data.model,
      choices: (data.choices || []).length,
      role: c.message && c.message.role,
      content: c.message && c.message.content,
      tool_calls: (c.message && c.message.tool_calls) || null,
      finish_reason: c.finish_reason,
      usage: data.usage,
      call_id: response.headers.get('x-litellm-call-id'),
      cost_header: response.headers.get('x-litellm-response-cost'),
      requests: chatCalls(),
    };
  });

  await step('claude_stream', async () => {
    const before = await spendOf(claudeUser);
    fetchCalls = [];
    const { data: stream, response } = await client.chat.completions
      .create({
        model: claudeModel,
        user: claudeUser,
        stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content: 'Count to three' }],
      })
      .withResponse();
    let text = '';
    let chunks = 0;
    const roles = [];
    const finishReasons = [];
    const objects = [];
    const usageChunks = [];
    for await (const chunk of stream) {
      chunks++;
      if (!objects.includes(chunk.object)) objects.push(chunk.object);
      if (chunk.usage) {
        usageChunks.push({ at: chunks, choices: chunk.choices, usage: chunk.usage });
      }
      for (const c of chunk.choices || []) {
        if (c.delta && c.delta.role) roles.push(c.delta.role);
        if (c.delta && typeof c.delta.content === 'string') text += c.delta.content;
        if (c.finish_reason) finishReasons.push(c.finish_reason);
      }
    }
    const after = await spendOf(claudeUser);
    return {
      before: before.spend,
      after: after.spend,
      text,
      chunks,
      objects,
      roles,
      finish_reasons: finishReasons,
      usage_chunks: usageChunks,
      call_id: response.headers.get('x-litellm-call-id'),
      content_type: response.headers.get('content-type'),
      requests: chatCalls(),
    };
  });

  // A tool-call round trip: the model asks for get_weather, the
  // application answers with a "tool" message, the model answers in text.
  await step('claude_tools', async () => {
    const before = await spendOf(claudeUser);
    fetchCalls = [];
    const tools = [{
      type: 'function',
      function: {
        name: 'get_weather',
        description: 'The weather in a city',
        parameters: {
          type: 'object',
          properties: { city: { type: 'string' }, days: { type: 'integer' } },
          required: ['city'],
        },
      },
    }];
    const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const first = await client.chat.completions
      .create({ model: claudeModel, user: claudeUser, messages, tools })
      .withResponse();
    const c1 = (first.data.choices && first.data.choices[0]) || {};
    const m1 = c1.message || {};
    const calls = m1.tool_calls || [];
    const args = calls.map((call) => {
      try {
        return { ok: true, value: JSON.parse(call.function.arguments) };
      } catch (e) {
        return { ok: false, text: call.function && call.function.arguments, error: String(e) };
      }
    });
    // the assistant's message as the SDK returned it, then one tool answer per call
    messages.push(m1);
    for (const call of calls) {
      messages.push({ role: 'tool', tool_call_id: call.id, content: 'sunny, 21 C' });
    }
    const second = await client.chat.completions
      .create({ model: claudeModel, user: claudeUser, messages, tools })
      .withResponse();
    const c2 = (second.data.choices && second.data.choices[0]) || {};
    const after = await spendOf(claudeUser);
    return {
      before: before.spend,
      after: after.spend,
      first: {
        object: first.data.object,
        finish_reason: c1.finish_reason,
        content: m1.content === undefined ? 'undefined' : m1.content,
        tool_calls: calls,
        arguments: args,
        usage: first.data.usage,
        call_id: first.response.headers.get('x-litellm-call-id'),
      },
      assistant_message: m1,
      second: {
        object: second.data.object,
        finish_reason: c2.finish_reason,
        content: c2.message && c2.message.content,
        tool_calls: (c2.message && c2.message.tool_calls) || null,
        usage: second.data.usage,
        call_id: second.response.headers.get('x-litellm-call-id'),
      },
      requests: chatCalls(),
    };
  });

  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ errors: [`main: ${e && e.stack ? e.stack : e}`] }) + '\n');
});
